/**
 * The statistics behind calibration's promise: a bootstrap over prompts of the quality share
 * (policy quality / reference model quality on the same prompts), shared by every candidate policy
 * so that comparing two candidates costs only the prompts where they differ.
 *
 * One resample set (B draws of n prompts with replacement, seeded) is drawn per calibration; a
 * candidate's share in resample b is Σ count[b,i]·p_i / Σ count[b,i]·ref_i. A candidate "passes"
 * at confidence c when at most (1 − c)·B resampled shares fall below the target, i.e. the
 * percentile bootstrap's one-sided lower bound is at or above the target (Efron & Tibshirani,
 * An Introduction to the Bootstrap, 1993, ch. 13). Pure: no I/O.
 */
import { seededRandom } from '../../common/random.js';

export interface Resamples {
  /** Number of resamples. */
  B: number;
  /** Number of prompts. */
  n: number;
  /** How often prompt i appears in resample b, at [i * B + b] (prompt-major: an update touches one run). */
  counts: Uint16Array;
}

export function drawResamples(n: number, B: number, seed = 1): Resamples {
  const rand = seededRandom(seed);
  const counts = new Uint16Array(n * B);
  for (let b = 0; b < B; b++) for (let j = 0; j < n; j++) counts[Math.floor(rand() * n) * B + b]!++;
  return { B, n, counts };
}

/** Σ_i count[b,i]·v_i for every resample b. */
export function resampledSums(res: Resamples, v: ArrayLike<number>): Float64Array {
  const sums = new Float64Array(res.B);
  for (let i = 0; i < res.n; i++) {
    const x = v[i]!;
    if (x === 0) continue;
    const base = i * res.B;
    for (let b = 0; b < res.B; b++) sums[b]! += res.counts[base + b]! * x;
  }
  return sums;
}

/** Adds delta·count[b,i] to every resample's sum (one prompt's quality changed by delta). */
export function shiftSums(res: Resamples, sums: Float64Array, i: number, delta: number): void {
  const base = i * res.B;
  for (let b = 0; b < res.B; b++) sums[b]! += res.counts[base + b]! * delta;
}

function share(num: number, den: number): number {
  if (den > 0) return num / den;
  return num > 0 ? Infinity : 1; // the reference got nothing right in this resample: nothing to lose
}

/** True when the one-sided percentile lower bound at `confidence` is ≥ target. */
export function passes(sums: Float64Array, refSums: Float64Array, target: number, confidence: number): boolean {
  const allowed = Math.floor((1 - confidence) * sums.length + 1e-9);
  let below = 0;
  for (let b = 0; b < sums.length; b++) if (share(sums[b]!, refSums[b]!) < target - 1e-12 && ++below > allowed) return false;
  return true;
}

export interface ShareInterval {
  /** Point estimate on the calibration prompts. */
  estimate: number;
  /** One-sided lower bound at the confidence level: the promise. */
  lower: number;
  /** Two-sided interval at the confidence level. */
  interval: [number, number];
}

export function shareInterval(sums: Float64Array, refSums: Float64Array, estimate: number, confidence: number): ShareInterval {
  const r = Array.from(sums, (s, b) => share(s, refSums[b]!)).sort((a, b) => a - b);
  const at = (q: number) => r[Math.min(r.length - 1, Math.max(0, Math.floor(q * r.length + 1e-9)))]!;
  return { estimate, lower: at(1 - confidence), interval: [at((1 - confidence) / 2), at((1 + confidence) / 2)] };
}

/**
 * Labelled prompts needed before a policy with this estimate and bound would pass: the bound's
 * distance to the estimate shrinks like 1/√n, so n·((estimate − lower)/(estimate − target))².
 * Infinity when the estimate itself is below the target.
 */
export function promptsNeeded(n: number, est: ShareInterval, target: number): number {
  const margin = est.estimate - target;
  if (margin <= 0) return Infinity;
  const width = Math.max(0, est.estimate - est.lower);
  return Math.max(n, Math.ceil(n * (width / margin) ** 2));
}
