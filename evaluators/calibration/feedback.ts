/**
 * Re-fitting a policy's thresholds from production traffic (`npm run calibrate -- --from-feedback`).
 * Pure: labelled requests in, thresholds and their promise out, with the bootstrap bound of
 * bound.ts at the same confidence rules as a dataset calibration.
 *
 * What production labels can and cannot say. A label judges the answer that was returned. An
 * answer a step rejected was never shown, so it has no label: a threshold can be re-fitted only
 * upwards (answers accepted at the old threshold that a higher one would escalate are labelled;
 * answers a lower one would accept are not). An escalated request's quality is then the mean label
 * of the answers the later steps returned, and the reference (the top step alone) is the mean label
 * of the top step's answers wherever the top step did not answer itself. Each step is re-fitted
 * with the others as they are.
 */
import { drawResamples, passes, promptsNeeded, resampledSums, shareInterval, type ShareInterval } from './bound.js';

export interface LabelledRequest {
  /** 1-based step whose answer was returned. */
  finalStep: number;
  /** The evaluator's confidence in that answer (null for an unevaluated last step). */
  confidence: number | null;
  /** The label's score in [0, 1]. */
  score: number;
}

export interface FeedbackFit {
  requests: number;
  /** Per ladder step: the threshold now and the re-fitted one (the last step has none). */
  thresholds: { step: number; current: number; fitted: number }[];
  share: ShareInterval | null;
  promised: boolean;
  /** Labelled requests a promise would need (null when it was made). */
  needed: number | null;
  /** Why nothing can be fitted, when so. */
  problem: string | null;
  /** The current thresholds' share, and the labelled requests they would need for the promise (when they miss it). */
  current: { share: ShareInterval; needed: number } | null;
}

/** Below this many labelled requests no bound is attempted: a bootstrap over a handful of rows says nothing. */
export const MIN_FEEDBACK_REQUESTS = 30;

export function fitFromFeedback(
  rows: LabelledRequest[],
  thresholds: number[],
  opts: { target: number; confidence: number; resamples?: number; seed?: number },
): FeedbackFit {
  const steps = thresholds.length;
  const current = thresholds.map((t, i) => ({ step: i + 1, current: t, fitted: t })).slice(0, -1);
  const base = { requests: rows.length, thresholds: current, share: null, promised: false, current: null };
  const top = rows.filter((r) => r.finalStep === steps);
  const fail = (problem: string, needed: number | null): FeedbackFit => ({ ...base, needed, problem });
  if (rows.length < MIN_FEEDBACK_REQUESTS)
    return fail(`too little data: ${rows.length} labelled requests, need ~${MIN_FEEDBACK_REQUESTS} or more to bound anything`, MIN_FEEDBACK_REQUESTS);
  if (top.length === 0) return fail('no labelled answer of the top step: its quality, the reference, is unknown', null);
  const mean = (xs: LabelledRequest[]) => xs.reduce((a, r) => a + r.score, 0) / xs.length;
  const refTop = mean(top);
  const ref = Float64Array.from(rows, (r) => (r.finalStep === steps ? r.score : refTop));
  const res = drawResamples(rows.length, opts.resamples ?? 1000, opts.seed ?? 1);
  const refSums = resampledSums(res, ref);
  const refTotal = ref.reduce((a, b) => a + b, 0);

  const fitted = [...thresholds];
  const qualityAt = (step: number, t: number, escalated: number) =>
    Float64Array.from(rows, (r) => (r.finalStep === step && (r.confidence ?? 1) < t ? escalated : r.score));
  for (const s of current) {
    const mine = rows.filter((r) => r.finalStep === s.step && r.confidence !== null);
    const later = rows.filter((r) => r.finalStep > s.step);
    if (mine.length === 0 || later.length === 0) continue;
    const escalated = mean(later);
    // Learn-then-Test, fixed sequence: from the highest threshold (everything escalated) down to
    // the current one; the lowest threshold still passing wins, the walk stops at the first failure.
    const grid = [...new Set(mine.map((r) => r.confidence!).filter((c) => c > s.current))].sort((a, b) => b - a);
    let chosen: number | null = null;
    for (const t of [Math.max(...grid, s.current) + 1e-9, ...grid, s.current]) {
      if (!passes(resampledSums(res, qualityAt(s.step, t, escalated)), refSums, opts.target, opts.confidence)) break;
      chosen = t;
    }
    fitted[s.step - 1] = chosen === null ? s.current : Math.min(1, Math.round(chosen * 1e4) / 1e4);
    s.fitted = fitted[s.step - 1]!;
  }
  // The promise of a set of thresholds together.
  const laterMean = thresholds.map((_, i) => {
    const later = rows.filter((x) => x.finalStep > i + 1);
    return later.length ? mean(later) : null;
  });
  const shareOf = (ts: number[]) => {
    const q = Float64Array.from(rows, (r) => {
      const s = r.finalStep;
      if (s === steps || r.confidence === null || r.confidence >= ts[s - 1]!) return r.score;
      return laterMean[s - 1] ?? r.score;
    });
    const estimate = refTotal > 0 ? q.reduce((a, b) => a + b, 0) / refTotal : 1;
    return shareInterval(resampledSums(res, q), refSums, estimate, opts.confidence);
  };
  const share = shareOf(fitted);
  const promised = share.lower >= opts.target - 1e-12;
  const now = fitted.some((t, i) => t !== thresholds[i]) ? shareOf(thresholds) : null;
  const currentFit = now && now.lower < opts.target ? { share: now, needed: promptsNeeded(rows.length, now, opts.target) } : null;
  const needed = promised ? null : promptsNeeded(rows.length, share, opts.target);
  const problem = promised
    ? null
    : Number.isFinite(needed)
      ? `too little data for a promise: ${rows.length} labelled requests, about ${needed} would be needed`
      : `the labels put the quality share below ${opts.target}: no amount of such data would promise it`;
  return { ...base, share, promised, needed, problem, current: currentFit };
}
