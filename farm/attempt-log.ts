/**
 * Farm-wide record of every attempt any pool saw, so tests can assert how many attempts a client
 * made, how far apart, and what each one got. Served at GET /farm/log.
 */
import type { FaultName } from './faults.js';
import type { ContinuationRecord } from './continuation.js';

export type AttemptOutcome =
  | 'pending'
  | 'ok'
  | '429'
  | '500'
  | '503'
  | 'reset'
  | 'no-response'
  | 'stream-cut'
  | 'stream-stall'
  | 'malformed-chunk'
  | 'no-done'
  | 'context_length_exceeded'
  | 'content_policy_violation'
  | 'not_found'
  | 'model_not_found'
  | 'invalid_request'
  | 'payload_too_large'
  | 'client-closed';

export interface Attempt {
  /** ISO time the attempt arrived. */
  time: string;
  /** Epoch ms the attempt arrived. */
  t_ms: number;
  pool: string;
  model: string | null;
  fault: FaultName | null;
  outcome: AttemptOutcome;
  request_id: string | null;
  stream: boolean;
  /** Backend kind that produced the answer (replay, synthetic, llama), null when none did. */
  backend: string | null;
  /** Epoch ms the response ended (sent in full, cut, or the client went away); null while it runs. */
  end_ms: number | null;
  /** The request continued a partial assistant answer (farm/continuation.ts); null otherwise. */
  continuation: ContinuationRecord | null;
}

export interface AttemptFilter {
  request_id?: string;
  pool?: string;
  model?: string;
}

export class AttemptLog {
  private attempts: Attempt[] = [];

  /** Keeps at most about `limit` attempts (oldest dropped in batches, to keep inserts cheap). */
  constructor(private readonly limit: number) {}

  /** Records an attempt and returns it; the caller updates `outcome`/`fault`/`backend` as it proceeds. */
  start(pool: string, model: string | null, requestId: string | null, stream: boolean): Attempt {
    const t = Date.now();
    const attempt: Attempt = {
      time: new Date(t).toISOString(),
      t_ms: t,
      pool,
      model,
      fault: null,
      outcome: 'pending',
      request_id: requestId,
      stream,
      backend: null,
      end_ms: null,
      continuation: null,
    };
    this.attempts.push(attempt);
    if (this.attempts.length > this.limit + 1024) this.attempts.splice(0, this.attempts.length - this.limit);
    return attempt;
  }

  query(filter: AttemptFilter = {}): Attempt[] {
    return this.attempts.filter(
      (a) =>
        (filter.request_id === undefined || a.request_id === filter.request_id) &&
        (filter.pool === undefined || a.pool === filter.pool) &&
        (filter.model === undefined || a.model === filter.model),
    );
  }

  clear(): void {
    this.attempts = [];
  }
}
