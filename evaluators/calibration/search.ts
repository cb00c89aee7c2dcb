/**
 * The policy search behind `npm run calibrate`, pure (arrays in, a choice out): ladders of the
 * dataset's models in any order, each early step's threshold, the pre-router's skip level.
 *
 * For a quality target the search is Learn-then-Test (Angelopoulos, Bates, Candès, Jordan & Lei,
 * "Learn then Test: Calibrating Predictive Algorithms to Achieve Risk Control", 2021) with fixed-
 * sequence testing: a policy's cost depends on the evaluators' confidences, never on the labels,
 * so within one structure (ladder, evaluators, skip level) the threshold settings are ordered by
 * cost, most expensive first, and tested in that order with the bootstrap bound of bound.ts; the
 * walk stops at the first setting that fails. Each structure's cheapest passing setting competes;
 * the cheapest wins, and among winners within `tieTolerance` of it the one with fewest steps.
 */
import { drawResamples, passes, promptsNeeded, resampledSums, shareInterval, shiftSums, type Resamples, type ShareInterval } from './bound.js';

export interface StepData {
  name: string;
  /** Per prompt: cost, quality label (0 where unlabelled), whether the model has an answer. */
  cost: Float64Array;
  quality: Float64Array;
  has: Uint8Array;
  /** Confidence of the evaluator chosen for this model (NaN: no answer); null: none applies. */
  conf: Float64Array | null;
  /** Pre-router's out-of-fold P(good enough) per prompt, or null without a pre-router. */
  prerouter: Float64Array | null;
  meanCost: number;
  meanQuality: number;
}

export interface Candidate {
  ladder: number[];
  /** Per step: true = accept whatever comes (a pure pre-routing step, or the last step). */
  acceptAll: boolean[];
  thresholds: number[];
  skip: number | null;
  cost: number;
  quality: number;
}

export interface SearchOptions {
  target?: number;
  maxCost?: number;
  confidence: number;
  maxSteps: number;
  /** Index of the reference model (the best single model on this split). */
  reference: number;
  /** Restrict the search to this ladder (model indices in order). */
  ladder?: number[];
  /** Costs within this much (USD per request) of the cheapest winner are near-ties. */
  tieTolerance: number;
  resamples?: number;
  seed?: number;
}

export interface Shortfall {
  candidate: Candidate;
  share: ShareInterval;
  /** Labelled prompts needed before this cheaper candidate's bound would likely meet the target. */
  needed: number;
}

export interface SearchResult {
  chosen: Candidate;
  /** The chosen policy's quality share with its bootstrap bound and interval. */
  share: ShareInterval;
  /** Target mode: the chosen policy's bound meets the target (false only without any candidate). */
  certified: boolean;
  /** Cheaper than the chosen policy and meeting the target on the estimate, but not on the bound. */
  shortfall: Shortfall | null;
  evaluated: number;
  structures: number;
  pruned: string[];
}

const SKIP_GRID = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9];
const THRESHOLD_GRID: Record<number, number> = { 2: 64, 3: 14 };
const DEFAULT_RESAMPLES = 1000;

/** Candidate thresholds: quantiles of the observed confidences (accept when conf >= t), plus 0. */
export function thresholdGrid(conf: Float64Array, size: number): number[] {
  const vals = Array.from(conf)
    .filter((v) => !Number.isNaN(v))
    .sort((a, b) => a - b);
  const out = new Set<number>([0]);
  for (let i = 0; i < size; i++) {
    const v = vals[Math.min(vals.length - 1, Math.floor(((i + 0.5) / size) * vals.length))];
    if (v !== undefined) out.add(Math.round(v * 1e6) / 1e6);
  }
  return [...out].sort((a, b) => a - b);
}

/** Models another model beats on both mean cost and mean quality (never the reference). */
export function dominated(steps: StepData[], reference: number): Set<number> {
  const out = new Set<number>();
  steps.forEach((m, i) => {
    if (i === reference) return;
    const beaten = steps.some(
      (o, j) => j !== i && o.meanCost <= m.meanCost && o.meanQuality >= m.meanQuality && (o.meanCost < m.meanCost || o.meanQuality > m.meanQuality),
    );
    if (beaten) out.add(i);
  });
  return out;
}

/** The cascade's acceptance rule over every prompt (mirrors runCascade for recorded answers); fills p, returns mean cost. */
export function simulate(steps: StepData[], c: Omit<Candidate, 'cost' | 'quality'>, p: Float64Array | null): number {
  const n = steps[0]!.cost.length;
  let cost = 0;
  for (let r = 0; r < n; r++) {
    let q = 0;
    for (let s = 0; s < c.ladder.length; s++) {
      const m = steps[c.ladder[s]!]!;
      const last = s === c.ladder.length - 1;
      if (!last && c.skip !== null && m.prerouter && m.prerouter[r]! < c.skip) continue;
      if (!m.has[r]) continue;
      cost += m.cost[r]!;
      if (last || c.acceptAll[s] || m.conf![r]! >= c.thresholds[s]!) {
        q = m.quality[r]!;
        break;
      }
    }
    if (p) p[r] = q;
  }
  return cost / n;
}

function cartesian(lists: number[][]): number[][] {
  return lists.reduce<number[][]>((acc, list) => acc.flatMap((a) => list.map((v) => [...a, v])), [[]]);
}

function permutations(items: number[], maxLen: number): number[][] {
  const out: number[][] = [];
  const grow = (acc: number[]) => {
    if (acc.length) out.push(acc);
    if (acc.length === maxLen) return;
    for (const i of items) if (!acc.includes(i)) grow([...acc, i]);
  };
  grow([]);
  return out;
}

type Structure = Omit<Candidate, 'cost' | 'quality' | 'thresholds'> & { grids: number[][] };

function structures(steps: StepData[], opts: SearchOptions, kept: number[]): Structure[] {
  const ladders = opts.ladder ? [opts.ladder] : permutations(kept, Math.min(opts.maxSteps, kept.length));
  const hasPrerouter = steps.some((m) => m.prerouter);
  const out: Structure[] = [];
  for (const ladder of ladders) {
    const k = ladder.length;
    if (k === 1) {
      out.push({ ladder, acceptAll: [true], skip: null, grids: [[0]] });
      continue;
    }
    const early = ladder.slice(0, -1).map((i) => steps[i]!);
    // Per early step: its chosen evaluator, or (two-step ladders, with a pre-router) accept-all.
    const options = early.map((m) => [...(m.conf ? [false] : []), ...(hasPrerouter && (k === 2 || !m.conf) ? [true] : [])]);
    const skips: (number | null)[] = [null, ...(hasPrerouter ? SKIP_GRID.filter((_, i) => k === 2 || i % 3 === 0) : [])];
    for (const flags of cartesian(options.map((o) => o.map((v) => (v ? 1 : 0))))) {
      const acceptAll = [...flags.map((f) => f === 1), true];
      const grids = [...early.map((m, s) => (acceptAll[s] ? [0] : thresholdGrid(m.conf!, THRESHOLD_GRID[k] ?? 10))), [0]];
      for (const skip of skips) {
        // An accept-all early step only routes when the pre-router can skip it.
        if (skip === null && acceptAll.slice(0, -1).some(Boolean)) continue;
        out.push({ ladder, acceptAll, skip, grids });
      }
    }
  }
  return out;
}

/** The shortfall worth reporting: the cheapest one that 20× the data could promise, else the one needing the fewest prompts. */
function betterShortfall(a: Shortfall, b: Shortfall | null, n: number): boolean {
  if (!b) return true;
  const reachable = (s: Shortfall) => s.needed <= 20 * n;
  if (reachable(a) !== reachable(b)) return reachable(a);
  return reachable(a) ? a.candidate.cost < b.candidate.cost : a.needed < b.needed;
}

export function search(steps: StepData[], opts: SearchOptions): SearchResult {
  const n = steps[0]!.cost.length;
  const res: Resamples = drawResamples(n, opts.resamples ?? DEFAULT_RESAMPLES, opts.seed ?? 1);
  const ref = steps[opts.reference]!;
  const refQ = ref.quality;
  const refSum = refQ.reduce((a, b) => a + b, 0);
  const refSums = resampledSums(res, refQ);
  const pruned = dominated(steps, opts.reference);
  const kept = steps.map((_, i) => i).filter((i) => !pruned.has(i));
  const all = structures(steps, opts, opts.ladder ?? kept);
  let evaluated = 0;
  const p = new Float64Array(n);
  const prev = new Float64Array(n);
  const shareOf = (v: Float64Array) => (refSum > 0 ? v.reduce((a, b) => a + b, 0) / refSum : 1);

  if (opts.maxCost !== undefined) {
    // Cost cap: the highest estimated quality within the cap (cost is label-free, so the cap is not a promise on noise).
    let best: Candidate | null = null;
    for (const st of all)
      for (const thresholds of cartesian(st.grids)) {
        const c = { ...st, thresholds };
        const cost = simulate(steps, c, p);
        evaluated++;
        const quality = p.reduce((a, b) => a + b, 0) / n;
        if (cost <= opts.maxCost + 1e-15 && (!best || quality > best.quality + 1e-12 || (Math.abs(quality - best.quality) <= 1e-12 && cost < best.cost)))
          best = { ladder: c.ladder, acceptAll: c.acceptAll, thresholds, skip: c.skip, cost, quality };
      }
    if (!best) {
      const cheapest = kept.reduce((a, i) => (steps[i]!.meanCost < steps[a]!.meanCost ? i : a), kept[0]!);
      best = { ladder: [cheapest], acceptAll: [true], thresholds: [0], skip: null, cost: steps[cheapest]!.meanCost, quality: 0 };
      best.cost = simulate(steps, best, p);
      best.quality = p.reduce((a, b) => a + b, 0) / n;
    } else simulate(steps, best, p);
    const share = shareInterval(resampledSums(res, p), refSums, shareOf(p), opts.confidence);
    return {
      chosen: best,
      share,
      certified: best.cost <= opts.maxCost + 1e-15,
      shortfall: null,
      evaluated,
      structures: all.length,
      pruned: [...pruned].map((i) => steps[i]!.name),
    };
  }

  const target = opts.target!;
  interface Winner {
    candidate: Candidate;
    share: ShareInterval;
  }
  const winners: Winner[] = [];
  let cheapest = Infinity;
  let shortfall: Shortfall | null = null;
  for (const st of all) {
    const settings = cartesian(st.grids).map((thresholds) => {
      evaluated++;
      return { thresholds, cost: simulate(steps, { ...st, thresholds }, null) };
    });
    settings.sort((a, b) => b.cost - a.cost);
    if (settings[settings.length - 1]!.cost > cheapest + opts.tieTolerance) continue; // cannot win or tie
    let sums: Float64Array | null = null;
    let last: Winner | null = null;
    for (const s of settings) {
      const c = { ...st, thresholds: s.thresholds };
      simulate(steps, c, p);
      const estimate = shareOf(p);
      if (estimate < target - 1e-12) break;
      if (!sums) sums = resampledSums(res, p);
      else for (let i = 0; i < n; i++) if (p[i] !== prev[i]) shiftSums(res, sums, i, p[i]! - prev[i]!);
      prev.set(p);
      const candidate: Candidate = { ...c, cost: s.cost, quality: p.reduce((a, b) => a + b, 0) / n };
      if (!passes(sums, refSums, target, opts.confidence)) {
        const share = shareInterval(sums, refSums, estimate, opts.confidence);
        const needed = promptsNeeded(n, share, target);
        if (s.cost < cheapest && betterShortfall({ candidate, share, needed }, shortfall, n)) shortfall = { candidate, share, needed };
        break;
      }
      last = { candidate, share: { estimate, lower: NaN, interval: [NaN, NaN] } };
    }
    if (last) {
      winners.push(last);
      cheapest = Math.min(cheapest, last.candidate.cost);
    }
  }
  const pool = winners.filter((w) => w.candidate.cost <= cheapest + opts.tieTolerance);
  pool.sort((a, b) => a.candidate.ladder.length - b.candidate.ladder.length || a.candidate.cost - b.candidate.cost);
  const won = pool[0];
  // The reference model alone always passes (its share is exactly 1), so `won` exists unless the target
  // exceeds 1 or the ladder is fixed; a fixed ladder falls back to its safest setting: highest thresholds,
  // and of its structures (evaluator or pre-router, skip levels) the one with the best estimated quality.
  let safest: Omit<Candidate, 'cost' | 'quality'> | null = null;
  if (opts.ladder && !won) {
    let bestQ = -Infinity;
    for (const st of all) {
      const c = { ladder: st.ladder, acceptAll: st.acceptAll, skip: st.skip, thresholds: st.grids.map((g) => g[g.length - 1]!) };
      simulate(steps, c, p);
      const q = p.reduce((a, b) => a + b, 0);
      if (q > bestQ + 1e-12) [bestQ, safest] = [q, c];
    }
  }
  const chosen: Candidate = won?.candidate ?? {
    ...(safest ?? { ladder: [opts.reference], acceptAll: [true], thresholds: [0], skip: null }),
    cost: 0,
    quality: 0,
  };
  chosen.cost = simulate(steps, chosen, p);
  chosen.quality = p.reduce((a, b) => a + b, 0) / n;
  const share = shareInterval(resampledSums(res, p), refSums, shareOf(p), opts.confidence);
  if (shortfall && shortfall.candidate.cost >= chosen.cost) shortfall = null;
  return { chosen, share, certified: !!won, shortfall, evaluated, structures: all.length, pruned: [...pruned].map((i) => steps[i]!.name) };
}
