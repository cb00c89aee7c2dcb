/**
 * Routing metrics over per-prompt decision records: quality and cost against the single models,
 * escalation and error rates, evaluator AUROC, APGR / CPT (RouteLLM, two-model ladders) and AIQ
 * (RouterBench). Pure functions.
 */
import type { DatasetRow } from '../../common/dataset.js';
import { goodEnough, quality, type DatasetView } from '../../evaluators/dataset-adapter.js';
import { auroc } from '../../evaluators/train/stats.js';
import type { DecisionRecord } from './replay.js';

export { auroc };

export interface Point {
  cost: number;
  quality: number;
}

export interface Baselines {
  single: { model: string; quality: number; cost: number }[];
  best: { model: string; quality: number; cost: number };
  cheapest: { model: string; quality: number; cost: number };
  oracle: Point;
}

/** Mean quality and cost per request of each single model, and the oracle (cheapest best answer). */
export function baselines(view: DatasetView): Baselines {
  const single = view.models.map((m) => ({ model: m.name, quality: m.quality, cost: m.cost }));
  const best = single.find((s) => s.model === view.best.name)!;
  const cheapest = single[0]!;
  let q = 0;
  let c = 0;
  for (const r of view.rows) {
    let pick: { q: number; c: number } | null = null;
    for (const m of view.models) {
      const v = quality(r.models[m.name]);
      if (v === null) continue;
      const cost = view.cost(r, m.name);
      if (!pick || v > pick.q || (v === pick.q && cost < pick.c)) pick = { q: v, c: cost };
    }
    q += pick?.q ?? 0;
    c += pick?.c ?? 0;
  }
  return { single, best, cheapest, oracle: { quality: q / view.rows.length, cost: c / view.rows.length } };
}

/** Quality of random mixing between the cheapest and the best single model at a given cost. */
export function randomAtCost(b: Baselines, cost: number): number {
  const span = b.best.cost - b.cheapest.cost;
  if (span <= 0) return b.best.quality;
  const share = Math.min(1, Math.max(0, (cost - b.cheapest.cost) / span));
  return b.cheapest.quality + share * (b.best.quality - b.cheapest.quality);
}

export interface RunSummary {
  requests: number;
  quality: number;
  cost_total_usd: number;
  cost_per_request_usd: number;
  quality_share_of_best: number;
  cost_share_of_best: number;
  escalation_rate: number;
  /** Share of requests whose answer was accepted at a non-last step although not good enough. */
  false_accept_rate: number;
  /** Share of requests escalated past an answer that was good enough. */
  unnecessary_escalation_rate: number;
  /** Share of requests that called the ladder's last model (RouteLLM's "% calls to the strong model"). */
  last_step_call_rate: number;
  degraded_rate: number;
  answered_by_step: Record<string, number>;
}

export function summarise(decisions: DecisionRecord[], view: DatasetView, b: Baselines, ladder: string[]): RunSummary {
  const rows = new Map(view.rows.map((r) => [r.id, r]));
  const n = decisions.length || 1;
  let q = 0;
  let c = 0;
  let esc = 0;
  let fa = 0;
  let ue = 0;
  let last = 0;
  let degraded = 0;
  const byStep: Record<string, number> = {};
  const lastModel = ladder[ladder.length - 1];
  for (const d of decisions) {
    const row = rows.get(d.id)!;
    q += d.quality ?? 0;
    c += d.cost_usd;
    // Escalated: answered by a later step than the first, whether the first was rejected, failed or skipped.
    if (d.final_step !== null && d.final_step > 1) esc++;
    if (d.degraded) degraded++;
    const key = d.final_model ?? 'none';
    byStep[key] = (byStep[key] ?? 0) + 1;
    if (d.steps.some((s) => s.model === lastModel && (s.outcome === null || !s.outcome.startsWith('skipped')))) last++;
    const acceptedEarly = d.steps.find((s) => s.accepted && s.confidence !== null && s.step < ladder.length);
    if (acceptedEarly && goodEnough(row, acceptedEarly.model, view.best.name) === false) fa++;
    if (d.steps.some((s) => s.confidence !== null && !s.accepted && goodEnough(row, s.model, view.best.name) === true)) ue++;
  }
  return {
    requests: decisions.length,
    quality: q / n,
    cost_total_usd: c,
    cost_per_request_usd: c / n,
    quality_share_of_best: b.best.quality ? q / n / b.best.quality : 0,
    cost_share_of_best: b.best.cost ? c / n / b.best.cost : 0,
    escalation_rate: esc / n,
    false_accept_rate: fa / n,
    unnecessary_escalation_rate: ue / n,
    last_step_call_rate: last / n,
    degraded_rate: degraded / n,
    answered_by_step: byStep,
  };
}

/** AUROC of each non-last step's confidence against "this step's answer was good enough". */
export function stepAuroc(
  decisions: DecisionRecord[],
  rows: DatasetRow[],
  best: string,
  ladder: string[],
): { step: number; model: string; auroc: number | null; n: number }[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  return ladder.slice(0, -1).map((model, i) => {
    const scores: number[] = [];
    const labels: boolean[] = [];
    for (const d of decisions) {
      const s = d.steps.find((x) => x.step === i + 1 && x.confidence !== null);
      const g = s ? goodEnough(byId.get(d.id)!, model, best) : null;
      if (!s || g === null) continue;
      scores.push(s.confidence!);
      labels.push(g);
    }
    return { step: i + 1, model, auroc: auroc(scores, labels), n: scores.length };
  });
}

export interface SweepPoint extends Point {
  threshold: number;
  /** Share of requests that called the last (strongest) model. */
  strong_share: number;
  /** Simulated end-to-end latency p50 at this threshold (bench/lib/latency-model.ts). */
  latency_p50_ms?: number;
}

/** Piecewise-linear PGR curve over the share of calls to the strong model, from 0 to 1. */
function pgrCurve(sweep: SweepPoint[], weak: number, strong: number): { x: number; pgr: number }[] {
  const span = strong - weak;
  const pts = sweep.map((p) => ({ x: p.strong_share, pgr: span ? (p.quality - weak) / span : 0 }));
  pts.push({ x: 0, pgr: 0 }, { x: 1, pgr: 1 });
  pts.sort((a, b) => a.x - b.x || a.pgr - b.pgr);
  // Several thresholds can give the same share; keep the best PGR at each share.
  const out: { x: number; pgr: number }[] = [];
  for (const p of pts) {
    const prev = out[out.length - 1];
    if (prev && Math.abs(prev.x - p.x) < 1e-12) prev.pgr = Math.max(prev.pgr, p.pgr);
    else out.push({ ...p });
  }
  return out;
}

/**
 * APGR (RouteLLM): the average, over the share of calls to the strong model from 0 to 100%, of the
 * performance gap recovered (q - q_weak) / (q_strong - q_weak). Trapezoids over the sweep.
 */
export function apgr(sweep: SweepPoint[], weak: number, strong: number): number {
  const c = pgrCurve(sweep, weak, strong);
  let area = 0;
  for (let i = 1; i < c.length; i++) area += ((c[i]!.x - c[i - 1]!.x) * (c[i]!.pgr + c[i - 1]!.pgr)) / 2;
  return area;
}

/** CPT(p) (RouteLLM): the smallest share of strong-model calls that reaches PGR p (linear interpolation). */
export function cpt(sweep: SweepPoint[], weak: number, strong: number, p: number): number {
  const c = pgrCurve(sweep, weak, strong);
  for (let i = 0; i < c.length; i++) {
    if (c[i]!.pgr >= p) {
      if (i === 0) return c[0]!.x;
      const a = c[i - 1]!;
      const b = c[i]!;
      return a.pgr >= p ? a.x : a.x + ((p - a.pgr) / (b.pgr - a.pgr)) * (b.x - a.x);
    }
  }
  return 1;
}

/**
 * AIQ (RouterBench): area under the router's non-decreasing upper convex hull in the cost-quality
 * plane, divided by the cost range it spans.
 */
export function aiq(points: Point[]): number {
  const pts = [...points].sort((a, b) => a.cost - b.cost || b.quality - a.quality);
  if (pts.length === 0) return 0;
  // Non-decreasing: a costlier point worse than a cheaper one is dominated.
  const mono: Point[] = [];
  for (const p of pts) if (!mono.length || p.quality > mono[mono.length - 1]!.quality) mono.push(p);
  const hull: Point[] = [];
  for (const p of mono) {
    while (hull.length >= 2) {
      const a = hull[hull.length - 2]!;
      const b = hull[hull.length - 1]!;
      if ((b.cost - a.cost) * (p.quality - a.quality) - (b.quality - a.quality) * (p.cost - a.cost) >= 0) hull.pop();
      else break;
    }
    hull.push(p);
  }
  const cmin = pts[0]!.cost;
  const cmax = pts[pts.length - 1]!.cost;
  if (cmax - cmin <= 0) return hull[hull.length - 1]!.quality;
  let area = 0;
  for (let i = 1; i < hull.length; i++) area += ((hull[i]!.cost - hull[i - 1]!.cost) * (hull[i]!.quality + hull[i - 1]!.quality)) / 2;
  // Beyond the hull's last point quality stays flat up to the costliest point.
  area += (cmax - hull[hull.length - 1]!.cost) * hull[hull.length - 1]!.quality;
  return area / (cmax - cmin);
}

/** Cost (per request) at which the sweep first reaches a quality, interpolated; null if never. */
export function costAtQuality(sweep: Point[], target: number): number | null {
  const pts = [...sweep].sort((a, b) => a.cost - b.cost);
  let bestSoFar: Point | null = null;
  for (const p of pts) {
    if (p.quality >= target) {
      if (!bestSoFar || bestSoFar.quality >= target) return p.cost;
      const f = (target - bestSoFar.quality) / (p.quality - bestSoFar.quality);
      return bestSoFar.cost + f * (p.cost - bestSoFar.cost);
    }
    if (!bestSoFar || p.quality > bestSoFar.quality) bestSoFar = p;
  }
  return null;
}
