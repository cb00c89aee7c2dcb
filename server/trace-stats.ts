/**
 * What each attempt of a cascade trace was, for metrics and the ledger: accepted, rejected,
 * error, skipped, an extra sample, or cancelled (a hedge that lost), and whether a failed call moved on to another deployment
 * of the same step (a failover). Pure.
 */
import type { AttemptRecord, CascadeTrace } from '../common/types.js';

export interface AttemptOutcome {
  attempt: AttemptRecord;
  outcome: 'accepted' | 'rejected' | 'error' | 'skipped' | 'sample' | 'cancelled';
  failedOver: boolean;
}

export function stepOutcomes(trace: CascadeTrace): AttemptOutcome[] {
  return trace.attempts.map((attempt, i) => {
    const failed = attempt.error !== null && attempt.deployment !== null;
    const outcome =
      attempt.detail === 'sample'
        ? 'sample'
        : attempt.accepted
          ? 'accepted'
          : attempt.error === 'cancelled'
            ? 'cancelled'
            : attempt.deployment === null
              ? 'skipped'
              : failed
                ? 'error'
                : 'rejected';
    // The next attempt of the same step on another deployment took over from this failed one.
    const next = trace.attempts[i + 1];
    const failedOver = failed && next !== undefined && next.step === attempt.step && next.deployment !== null && next.deployment !== attempt.deployment;
    return { attempt, outcome, failedOver };
  });
}
