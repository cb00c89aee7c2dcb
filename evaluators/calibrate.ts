/**
 * Calibration: chooses the ladder (which of the dataset's models, in which order), each step's
 * evaluator and threshold, and whether to use the pre-router, on one split, for a quality target
 * (a share of the best single model) or a cost cap. Trained heads are scored with their
 * out-of-fold predictions from `npm run train`, never with scores they were fitted to.
 *
 * The search simulates the cascade's acceptance rule vectorised over prompts (thousands of
 * candidate policies per second); the chosen policy is then replayed through the workflow's own
 * `runCascade` (bench/lib/replay.ts) to report what it really does.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { loadDataset, loadModelPrices, splitOf } from '../common/dataset.js';
import { evaluationInputOf, quality, viewOf, type DatasetView } from './dataset-adapter.js';
import { REPO_ROOT } from './head.js';
import { createEvaluator } from './index.js';
import type { EvaluatorSpec } from './spec.js';
import { fileHash } from './train/embeddings.js';
import type { Manifest } from './train/train.js';

export interface CalibrateOptions {
  data: string;
  split?: string;
  /** Quality target as a share of the best single model's (e.g. 0.99). */
  target?: number;
  /** Cap on the mean cost per request (USD). */
  maxCost?: number;
  /** Manifest written by `npm run train` (default: evaluators/models/<data name>.manifest.json). */
  manifest?: string;
  /** Longest ladder considered (default 3). */
  maxSteps?: number;
  /** Evaluator types the search may use (default: every type the data supports). */
  evaluators?: EvaluatorSpec['type'][];
  /** A fixed ladder (model names, in order) instead of searching over ladders. */
  ladder?: string[];
  /** Whether the pre-router may be used (default: when trained). */
  prerouter?: boolean;
  name?: string;
  log?: (msg: string) => void;
}

export interface PolicyFile {
  name: string;
  description?: string;
  steps: { model: string; evaluator: EvaluatorSpec; threshold: number }[];
  evaluate_last_step: boolean;
  deadline_ms: number;
  max_cost_usd: number;
  prerouter?: { model_file: string; skip_below: number };
}

export interface CalibrationResult {
  policy: PolicyFile;
  /** Expected quality / cost per request on the calibration split (search estimate). */
  expected: { quality: number; cost_per_request: number; quality_share_of_best: number; cost_share_of_best: number; feasible: boolean };
  best_single: { model: string; quality: number; cost: number };
  candidates_evaluated: number;
  seconds: number;
}

interface Signal {
  spec: EvaluatorSpec;
  /** Confidence per row (NaN: the model has no answer for the row, so the step fails and escalates). */
  conf: Float64Array;
}

interface ModelArrays {
  name: string;
  cost: Float64Array;
  quality: Float64Array;
  has: Uint8Array;
  signals: Signal[];
  prerouter: Float64Array | null;
}

const THRESHOLD_GRID_2 = 64;
const THRESHOLD_GRID_3 = 14;
const SKIP_GRID = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9];

/** Candidate thresholds: quantiles of the observed confidences (accept when conf >= t), plus 0. */
function thresholdGrid(conf: Float64Array, size: number): number[] {
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

export async function calibrate(opts: CalibrateOptions): Promise<CalibrationResult> {
  const log = opts.log ?? ((m: string) => console.log(m));
  const started = Date.now();
  if ((opts.target === undefined) === (opts.maxCost === undefined)) throw new Error('give exactly one of --target or --max-cost');
  const split = opts.split ?? 'train';
  const name = opts.name ?? basename(opts.data).replace(/\.jsonl$/, '');
  const rows = (await loadDataset(opts.data)).filter((r) => splitOf(r) === split);
  if (rows.length === 0) throw new Error(`${opts.data}: no rows in split "${split}"`);
  const view = viewOf(rows, await loadModelPrices(opts.data));
  const manifestPath = opts.manifest ?? join(REPO_ROOT, 'evaluators/models', `${name}.manifest.json`);
  let manifest: Manifest | null = null;
  if (existsSync(manifestPath)) {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest;
    if (manifest.dataset_sha1 !== (await fileHash(opts.data)))
      log(`calibrate: warning: ${manifestPath} was trained on another version of ${basename(opts.data)}`);
    if (manifest.split !== split)
      log(`calibrate: note: heads were trained on split "${manifest.split}", calibrating on "${split}" (heads then scored in-sample where rows overlap)`);
  } else log(`calibrate: no trained heads (${manifestPath}); run npm run train -- --data ${opts.data} to use the answer model and pre-router`);
  const allowed = (t: EvaluatorSpec['type']) => !opts.evaluators || opts.evaluators.includes(t);

  const arrays: ModelArrays[] = [];
  for (const m of view.models) {
    const cost = Float64Array.from(rows, (r) => view.cost(r, m.name));
    const q = Float64Array.from(rows, (r) => quality(r.models[m.name]) ?? 0);
    const has = Uint8Array.from(rows, (r) => (r.models[m.name] && (r.models[m.name]!.response !== null || quality(r.models[m.name]) !== null) ? 1 : 0));
    // `none` (always accept) makes a step a pure prompt-routing step when the pre-router skips it.
    const signals: Signal[] = [{ spec: { type: 'none' }, conf: Float64Array.from(has, (h) => (h ? 1 : NaN)) }];
    const withResponses = rows.filter((r) => r.models[m.name]?.response).length > rows.length / 2;
    const computed = async (spec: EvaluatorSpec) => {
      const ev = await createEvaluator(spec);
      const conf = new Float64Array(rows.length).fill(NaN);
      for (let i = 0; i < rows.length; i++) if (has[i]) conf[i] = (await ev.evaluate(evaluationInputOf(rows[i]!, m.name, 0))).confidence;
      return conf;
    };
    const answerFile = manifest?.answer_models[m.name];
    if (answerFile && allowed('answer-model')) {
      const oof = manifest!.oof.answer[m.name] ?? {};
      const spec: EvaluatorSpec = { type: 'answer-model', model_file: answerFile };
      const ev = await createEvaluator(spec);
      const conf = new Float64Array(rows.length).fill(NaN);
      for (let i = 0; i < rows.length; i++) {
        if (!has[i]) continue;
        const o = oof[rows[i]!.id];
        conf[i] = o ?? (await ev.evaluate(evaluationInputOf(rows[i]!, m.name, 0))).confidence;
      }
      signals.push({ spec, conf });
    }
    if (withResponses) {
      if (allowed('arithmetic'))
        signals.push({ spec: { type: 'arithmetic', when_unchecked: 0.5 }, conf: await computed({ type: 'arithmetic', when_unchecked: 0.5 }) });
      if (allowed('validators')) signals.push({ spec: { type: 'validators' }, conf: await computed({ type: 'validators' }) });
    }
    if (allowed('logprob') && rows.some((r) => r.models[m.name]?.logprob != null))
      signals.push({ spec: { type: 'logprob', when_absent: 0.5 }, conf: await computed({ type: 'logprob', when_absent: 0.5 }) });
    let prerouter: Float64Array | null = null;
    if (manifest?.prerouter && opts.prerouter !== false) {
      const oof = manifest.oof.prerouter;
      prerouter = Float64Array.from(rows, (r) => oof[r.id]?.[m.name] ?? 1);
    }
    arrays.push({ name: m.name, cost, quality: q, has, signals, prerouter });
  }

  const bestQ = view.best.quality;
  const n = rows.length;
  interface Choice {
    ladder: number[];
    signals: number[];
    thresholds: number[];
    skip: number | null;
    quality: number;
    cost: number;
  }
  let best: Choice | null = null;
  let fallback: Choice | null = null;
  let evaluated = 0;
  const better = (a: Choice, b: Choice | null, feasibleA: boolean): boolean => {
    if (!b) return true;
    if (opts.target !== undefined) return feasibleA ? a.cost < b.cost - 1e-12 || (Math.abs(a.cost - b.cost) <= 1e-12 && a.quality > b.quality) : false;
    return feasibleA ? a.quality > b.quality + 1e-12 || (Math.abs(a.quality - b.quality) <= 1e-12 && a.cost < b.cost) : false;
  };
  const feasible = (q: number, c: number) => (opts.target !== undefined ? q >= opts.target * bestQ - 1e-12 : c <= opts.maxCost! + 1e-15);
  const consider = (ch: Omit<Choice, 'quality' | 'cost'>, q: number, c: number) => {
    evaluated++;
    const choice = { ...ch, quality: q, cost: c };
    if (feasible(q, c)) {
      if (better(choice, best, true)) best = { ...choice, ladder: [...ch.ladder], signals: [...ch.signals], thresholds: [...ch.thresholds] };
    } else {
      // Closest miss, in case nothing is feasible: highest quality (target) or cheapest (cost cap).
      const miss = opts.target !== undefined ? !fallback || q > fallback.quality : !fallback || c < fallback.cost;
      if (miss) fallback = { ...choice, ladder: [...ch.ladder], signals: [...ch.signals], thresholds: [...ch.thresholds] };
    }
  };

  /** The cascade's acceptance rule over every row (mirrors runCascade for recorded answers). */
  const simulate = (ladder: number[], sig: number[], th: number[], skip: number | null): [number, number] => {
    let q = 0;
    let c = 0;
    for (let r = 0; r < n; r++) {
      for (let s = 0; s < ladder.length; s++) {
        const m = arrays[ladder[s]!]!;
        const last = s === ladder.length - 1;
        if (!last && skip !== null && m.prerouter && m.prerouter[r]! < skip) continue;
        if (!m.has[r]) continue;
        c += m.cost[r]!;
        if (last || m.signals[sig[s]!]!.conf[r]! >= th[s]!) {
          q += m.quality[r]!;
          break;
        }
      }
    }
    return [q / n, c / n];
  };

  const M = arrays.length;
  const maxSteps = Math.min(opts.maxSteps ?? 3, M);
  const skips: (number | null)[] = [null, ...(arrays.some((a) => a.prerouter) ? SKIP_GRID : [])];
  const ladders: number[][] = [];
  const build = (start: number, acc: number[]) => {
    if (acc.length) ladders.push([...acc]);
    if (acc.length === maxSteps) return;
    for (let i = start; i < M; i++) build(i + 1, [...acc, i]);
  };
  if (opts.ladder) {
    const idx = opts.ladder.map((m) => arrays.findIndex((a) => a.name === m));
    if (idx.some((i) => i < 0)) throw new Error(`--ladder names a model not in the dataset (models: ${arrays.map((a) => a.name).join(', ')})`);
    ladders.push(idx);
  } else build(0, []);
  for (const ladder of ladders) {
    const k = ladder.length;
    if (k === 1) {
      const [q, c] = simulate(ladder, [0], [0], null);
      consider({ ladder, signals: [0], thresholds: [0], skip: null }, q, c);
      continue;
    }
    const early = ladder.slice(0, -1).map((i) => arrays[i]!);
    if (early.some((m) => m.signals.length === 0)) continue;
    // Two-step ladders try every evaluator; longer ones use each model's best-ranking one (AUROC on this split).
    const sigChoices: number[][] = k === 2 ? [early[0]!.signals.map((_, i) => i)] : early.map((m) => [bestSignal(m, view, rows)]);
    const combos = cartesian(sigChoices);
    for (const sig of combos) {
      const grids = early.map((m, s) => thresholdGrid(m.signals[sig[s]!]!.conf, k === 2 ? THRESHOLD_GRID_2 : THRESHOLD_GRID_3));
      for (const th of cartesian(grids)) {
        for (const skip of k === 2 ? skips : skips.filter((_, i) => i % 3 === 0)) {
          // An always-accepting early step only makes sense when the pre-router can skip it.
          if (skip === null && sig.some((si, s) => early[s]!.signals[si]!.spec.type === 'none')) continue;
          const thresholds = [...th, 0];
          const [q, c] = simulate(ladder, [...sig, 0], thresholds, skip);
          consider({ ladder, signals: [...sig, 0], thresholds, skip }, q, c);
        }
      }
    }
  }
  const chosen = (best ?? fallback) as Choice | null; // assigned inside `consider`, which TS cannot see
  if (!chosen)
    throw new Error('no candidate policy: no allowed evaluator applies to the early steps (do their models have recorded answers? is the pre-router trained?)');
  const isFeasible = (best as Choice | null) !== null;
  if (!isFeasible)
    log(
      `calibrate: no policy meets ${opts.target !== undefined ? `quality ${opts.target} of the best model` : `a mean cost of $${opts.maxCost}`} on this split; writing the closest`,
    );
  const usesPrerouter = chosen.skip !== null && chosen.ladder.length > 1;
  let maxRowCost = 0;
  for (let r = 0; r < n; r++)
    maxRowCost = Math.max(
      maxRowCost,
      chosen.ladder.reduce((s, i) => s + arrays[i]!.cost[r]!, 0),
    );
  const policy: PolicyFile = {
    name: `${name}-calibrated`,
    description: `Calibrated on ${basename(opts.data)} split "${split}" (${n} prompts) for ${opts.target !== undefined ? `quality >= ${opts.target} x ${view.best.name}` : `mean cost <= $${opts.maxCost}/request`} by npm run calibrate`,
    steps: chosen.ladder.map((mi, s) => {
      const last = s === chosen.ladder.length - 1;
      return {
        model: arrays[mi]!.name,
        evaluator: last ? { type: 'none' } : arrays[mi]!.signals[chosen.signals[s]!]!.spec,
        threshold: last ? 0 : chosen.thresholds[s]!,
      };
    }),
    evaluate_last_step: false,
    deadline_ms: 60000,
    // A per-request cap that never binds for prompts like these (twice the costliest full ladder).
    max_cost_usd: Number(Math.max(0.01, 2 * maxRowCost).toPrecision(2)),
    ...(usesPrerouter && manifest?.prerouter ? { prerouter: { model_file: manifest.prerouter, skip_below: chosen.skip! } } : {}),
  };
  return {
    policy,
    expected: {
      quality: chosen.quality,
      cost_per_request: chosen.cost,
      quality_share_of_best: bestQ ? chosen.quality / bestQ : 0,
      cost_share_of_best: view.best.cost ? chosen.cost / view.best.cost : 0,
      feasible: isFeasible,
    },
    best_single: { model: view.best.name, quality: view.best.quality, cost: view.best.cost },
    candidates_evaluated: evaluated,
    seconds: (Date.now() - started) / 1000,
  };
}

function cartesian(lists: number[][]): number[][] {
  return lists.reduce<number[][]>((acc, list) => acc.flatMap((a) => list.map((v) => [...a, v])), [[]]);
}

/** Index of the model's signal that best separates good from bad answers on this split. */
function bestSignal(m: ModelArrays, view: DatasetView, rows: DatasetView['rows']): number {
  let best = 0;
  let bestScore = -1;
  m.signals.forEach((s, i) => {
    let concordant = 0;
    let pairs = 0;
    const good: number[] = [];
    const bad: number[] = [];
    rows.forEach((r, j) => {
      if (Number.isNaN(s.conf[j]!)) return;
      const o = r.models[m.name];
      const g = o?.correct ?? (o?.score != null && r.models[view.best.name]?.score != null ? o.score >= r.models[view.best.name]!.score! : null);
      if (g === null || g === undefined) return;
      (g ? good : bad).push(s.conf[j]!);
    });
    bad.sort((a, b) => a - b);
    for (const g of good) {
      let lo = 0;
      let hi = bad.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (bad[mid]! < g) lo = mid + 1;
        else hi = mid;
      }
      concordant += lo;
      pairs += bad.length;
    }
    const score = pairs ? concordant / pairs : 0.5;
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  });
  return best;
}
