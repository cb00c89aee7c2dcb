/**
 * The promise calibration prints, made honest about three things the search's own bootstrap ignores
 * (measured on synthetic data with the truth known, docs/evaluators.md#calibration):
 *
 * 1. **Selection.** The search tries hundreds of structures and keeps the cheapest that passes, so
 *    its in-sample share is optimistic (the winner's curse): with 30 prompts the chosen policy's
 *    in-sample share averaged 1.01 while its true share was 0.97. Here the *whole procedure* is
 *    cross-validated: K-fold, the search runs on K − 1 folds and its choice answers the held-out
 *    fold; the pooled out-of-fold answers estimate what the procedure delivers on unseen prompts
 *    (cross-validation of a tuned procedure: Varma & Simon, "Bias in error estimation when using
 *    cross-validation for model selection", BMC Bioinformatics 7:91, 2006; Tibshirani &
 *    Tibshirani, "A bias correction for the minimum error rate in cross-validation", Ann. Appl.
 *    Stat. 3(2), 2009). When that promise falls short, the search's own target is raised by the
 *    shortfall and the procedure re-checked, until the cross-fitted bound meets the user's target.
 * 2. **Small samples.** A percentile bootstrap over 29 prompts on which two policies rarely differ
 *    collapses to a point. The interval is a Wald interval on the paired ratio Σp/Σref with
 *    Agresti & Min's pseudo-observations (half a prompt in each corner of the paired table:
 *    "Simple improved confidence intervals for comparing matched proportions", Stat. Med. 24, 2005)
 *    and Student-t quantiles, so it is wide when the data is small and vanishes into the plain
 *    Wald interval when it is not.
 * 3. **Test-set noise.** A user measures the realised share on m prompts of their own, which is
 *    itself noisy: the prediction interval for that measurement widens the interval by √(1 + n/m).
 *
 * Pure: arrays in, numbers out.
 */
import { seededRandom } from '../../common/random.js';
import type { ShareInterval } from './bound.js';
import { search, simulate, type Candidate, type SearchOptions, type SearchResult, type StepData } from './search.js';

export interface PairedShare extends ShareInterval {
  /** Standard error of the share, and the degrees of freedom of its t quantile. */
  se: number;
  df: number;
  /** Prompts the interval is computed from. */
  n: number;
}

/** Standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}

/** Student-t quantile by the Cornish–Fisher expansion in 1/df (Abramowitz & Stegun 26.7.5); ≤ 0.5 % off for df ≥ 5. */
export function tQuantile(p: number, df: number): number {
  const z = normalQuantile(p);
  const v = Math.max(1, df);
  const z3 = z ** 3;
  const z5 = z ** 5;
  const z7 = z ** 7;
  return z + (z3 + z) / (4 * v) + (5 * z5 + 16 * z3 + 3 * z) / (96 * v * v) + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * v ** 3);
}

/**
 * The share Σp/Σref over paired per-prompt qualities (0 … top, top = 1 for right/wrong labels), with
 * its one-sided lower bound and two-sided interval at `confidence`: a delta-method (Wald) interval
 * with Agresti–Min's half pseudo-prompt in each corner ((top,top), (top,0), (0,top), (0,0)) and
 * t quantiles on n − 1 df.
 */
export function pairedShare(p: ArrayLike<number>, ref: ArrayLike<number>, confidence: number): PairedShare {
  const n = p.length;
  let sp = 0;
  let sr = 0;
  // The corners sit at the label scale: 1 for right/wrong labels, the top score for graded ones (MT-Bench: 10).
  let top = 1;
  for (let i = 0; i < n; i++) {
    sp += p[i]!;
    sr += ref[i]!;
    top = Math.max(top, p[i]!, ref[i]!);
  }
  const estimate = sr > 0 ? sp / sr : 1;
  const corners: [number, number][] = [
    [top, top],
    [top, 0],
    [0, top],
    [0, 0],
  ];
  const P = sp + top;
  const R = sr + top;
  const s = P / R;
  let e2 = 0;
  for (let i = 0; i < n; i++) e2 += (p[i]! - s * ref[i]!) ** 2;
  for (const [a, b] of corners) e2 += 0.5 * (a - s * b) ** 2;
  const w = n + 2;
  const se = Math.sqrt((e2 * w) / (w - 1)) / R;
  const df = Math.max(1, n - 1);
  const one = tQuantile(confidence, df) * se;
  const two = tQuantile((1 + confidence) / 2, df) * se;
  // Centred on the adjusted share; the plain estimate is reported as the estimate.
  return { estimate, lower: s - one, interval: [s - two, s + two], se, df, n };
}

/** Where a share measured on `testPrompts` fresh prompts should land, at the interval's confidence (an exact share stays exact). */
export function predictionInterval(share: PairedShare, testPrompts: number, confidence: number): [number, number] {
  if (share.se === 0) return share.interval;
  const centre = (share.interval[0] + share.interval[1]) / 2;
  const half = tQuantile((1 + confidence) / 2, share.df) * share.se * Math.sqrt(1 + share.n / Math.max(1, testPrompts));
  return [centre - half, centre + half];
}

/** The steps restricted to some prompts (means recomputed, so pruning sees only those prompts). */
export function subsetSteps(steps: StepData[], idx: number[]): StepData[] {
  const pick = <T extends Float64Array | Uint8Array>(a: T): T =>
    (a instanceof Uint8Array ? Uint8Array.from(idx, (i) => a[i]!) : Float64Array.from(idx, (i) => a[i]!)) as T;
  return steps.map((s) => {
    const cost = pick(s.cost);
    const quality = pick(s.quality);
    const mean = (a: Float64Array) => (idx.length ? a.reduce((x, y) => x + y, 0) / idx.length : 0);
    return {
      ...s,
      cost,
      quality,
      has: pick(s.has),
      conf: s.conf && pick(s.conf),
      prerouter: s.prerouter && pick(s.prerouter),
      meanCost: mean(cost),
      meanQuality: mean(quality),
    };
  });
}

/** Fold of each prompt: a seeded shuffle dealt round-robin into `folds` folds. */
export function foldsOf(n: number, folds: number, seed: number): Int32Array {
  const rand = seededRandom(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const fold = new Int32Array(n);
  order.forEach((i, k) => (fold[i] = k % folds));
  return fold;
}

/** Every prompt answered by the policy the search chose without it: the procedure's out-of-fold qualities. */
export function crossFit(steps: StepData[], opts: SearchOptions, folds: number, seed = 1): { p: Float64Array; ref: Float64Array } {
  const n = steps[0]!.cost.length;
  const fold = foldsOf(n, folds, seed);
  const p = new Float64Array(n);
  const ref = steps[opts.reference]!.quality;
  for (let k = 0; k < folds; k++) {
    const inside: number[] = [];
    const held: number[] = [];
    for (let i = 0; i < n; i++) (fold[i] === k ? held : inside).push(i);
    if (held.length === 0) continue;
    const chosen = search(subsetSteps(steps, inside), opts).chosen;
    const out = new Float64Array(held.length);
    simulate(subsetSteps(steps, held), chosen, out);
    held.forEach((i, j) => (p[i] = out[j]!));
  }
  return { p, ref };
}

export interface PromiseOptions extends SearchOptions {
  /** Folds of the cross-fitting (0 or 1: none, the search's in-sample bootstrap as before). */
  folds: number;
  /** Rounds of raising the search's target before giving up on a cheaper policy (default 8). */
  rounds?: number;
  /** Called before each cross-fitting round (progress on long runs). */
  progress?: (msg: string) => void;
}

export interface PromiseResult extends Omit<SearchResult, 'share'> {
  share: PairedShare;
  /** The target the search itself was run at (≥ the user's, raised to pay for selection). */
  searchTarget: number;
  /** The bound meets the user's target. */
  promised: boolean;
  /** The cross-fitted share of the procedure at the user's own target (the first round). */
  firstRound: PairedShare;
  /** When the choice is not the search's at the user's own target: what that search picks on all prompts. */
  atTarget: Candidate | null;
  rounds: number;
}

const alone = (reference: number): Candidate => ({ ladder: [reference], acceptAll: [true], thresholds: [0], skip: null, cost: 0, quality: 0 });

/**
 * Target mode: the search at the user's target, checked by cross-fitting; while the procedure's
 * cross-fitted bound is below the target, the search's target rises by half the shortfall (at
 * least 0.005; the procedure's share is noisy in its target, so whole steps overshoot) and the
 * check repeats, up to `rounds` (8) times. When no round meets it: the reference alone (its share
 * is 1 by definition) on a free search, or the fixed ladder's result, not promised. Cost-cap mode:
 * the search once, with the cross-fitted share as its honest interval.
 */
export function promiseSearch(steps: StepData[], opts: PromiseOptions): PromiseResult {
  const n = steps[0]!.cost.length;
  const confidence = opts.confidence;
  // Every fold's search needs prompts to choose on: at least two per fold.
  const folds = Math.min(opts.folds, Math.floor(n / 2));
  const fitted = (o: SearchOptions) => {
    const { p, ref } = crossFit(steps, o, folds, opts.seed ?? 1);
    return pairedShare(p, ref, confidence);
  };
  if (folds < 2) {
    const found = search(steps, opts);
    const p = new Float64Array(n);
    simulate(steps, found.chosen, p);
    const share = pairedShare(p, steps[opts.reference]!.quality, confidence);
    // Cross-fitting was asked for but there are too few prompts: promise on the small-sample interval.
    const lower = opts.folds >= 2 ? share.lower : found.share.lower;
    const promised = opts.target !== undefined && found.certified && lower >= opts.target - 1e-12;
    if (opts.folds >= 2) {
      opts.progress?.(`only ${n} prompts: too few to cross-fit; the promise uses the in-sample small-sample interval`);
      if (opts.target !== undefined && !promised && !opts.ladder) return referenceAlone(steps, opts.reference, found, share, opts.target, 0);
      return { ...found, share, searchTarget: opts.target ?? NaN, promised, firstRound: share, atTarget: null, rounds: 0 };
    }
    return {
      ...found,
      share: { ...share, lower: found.share.lower, interval: found.share.interval },
      searchTarget: opts.target ?? NaN,
      promised,
      firstRound: share,
      atTarget: null,
      rounds: 0,
    };
  }
  if (opts.target === undefined) {
    opts.progress?.(`cross-fitting the chosen procedure over ${folds} folds`);
    const share = fitted(opts);
    const found = search(steps, opts);
    return { ...found, share, searchTarget: NaN, promised: false, firstRound: share, atTarget: null, rounds: 1 };
  }
  const target = opts.target;
  const maxRounds = opts.rounds ?? 8;
  let t = target;
  let first: PairedShare | null = null;
  let last: PairedShare | null = null;
  let lastT = t;
  let rounds = 0;
  while (rounds < maxRounds) {
    rounds++;
    opts.progress?.(`round ${rounds}: search at target ${t.toFixed(4)}, cross-fitted over ${folds} folds`);
    const share = fitted({ ...opts, target: t });
    first ??= share;
    last = share;
    lastT = t;
    if (share.lower >= target - 1e-12) {
      const found = search(steps, { ...opts, target: t });
      const atTarget = rounds > 1 ? search(steps, opts).chosen : null;
      return { ...found, share, searchTarget: t, promised: found.certified, firstRound: first, atTarget, rounds };
    }
    if (t >= 1) break;
    t = Math.min(1, t + Math.max(0.005, (target - share.lower) / 2));
  }
  const found = search(steps, { ...opts, target: lastT });
  const atTarget = search(steps, opts).chosen;
  if (opts.ladder) return { ...found, share: last!, searchTarget: lastT, promised: false, firstRound: first!, atTarget, rounds };
  return { ...referenceAlone(steps, opts.reference, found, first!, lastT, rounds), atTarget };
}

/** Nothing cheaper can be promised from this data: the reference model alone is its own share, 1. */
function referenceAlone(steps: StepData[], reference: number, found: SearchResult, first: PairedShare, searchTarget: number, rounds: number): PromiseResult {
  const n = steps[0]!.cost.length;
  const chosen = alone(reference);
  chosen.cost = simulate(steps, chosen, null);
  chosen.quality = steps[reference]!.meanQuality;
  const exact: PairedShare = { estimate: 1, lower: 1, interval: [1, 1], se: 0, df: Math.max(1, n - 1), n };
  return { ...found, chosen, certified: true, share: exact, searchTarget, promised: true, firstRound: first, atTarget: found.chosen, rounds };
}
