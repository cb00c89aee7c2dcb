/**
 * Calibration: chooses the ladder (which of the dataset's models, in which order), each step's
 * evaluator and threshold, and whether to use the pre-router, on one split, for a quality target
 * (a share of the best single model, promised with a confidence level) or a cost cap. Trained
 * heads are scored with their out-of-fold predictions from `npm run train`, never with scores they
 * were fitted to. Loading and the policy file live here; the signals in calibration/signals.ts,
 * the search in calibration/search.ts, the bound in calibration/bound.ts.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { loadDataset, loadModelPrices, splitOf } from '../common/dataset.js';
import { quality, viewOf } from './dataset-adapter.js';
import { REPO_ROOT } from './head.js';
import { promptsNeeded } from './calibration/bound.js';
import { promiseSearch, type PairedShare } from './calibration/crossfit.js';
import type { StepData } from './calibration/search.js';
import { pickSignal, signalsFor, type Signal } from './calibration/signals.js';
import type { EvaluatorSpec } from './spec.js';
import { fileHash } from './train/embeddings.js';
import type { Manifest } from './train/train.js';

export interface CalibrateOptions {
  data: string;
  split?: string;
  /** Quality target as a share of the best single model's (e.g. 0.99). */
  target?: number;
  /** Confidence that the target holds on unseen prompts of the same distribution (default 0.95). */
  confidence?: number;
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
  /** Folds of the cross-fitted promise (default 5; 0: the search's in-sample bootstrap only, optimistic). */
  folds?: number;
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
  /**
   * The quality share the procedure delivers on unseen prompts (cross-fitted, calibration/crossfit.ts)
   * with its bound and interval; `promised` when the bound meets the target.
   */
  promise: {
    target: number | null;
    confidence: number;
    share: PairedShare;
    promised: boolean;
    prompts: number;
    /** Prompts of the file outside the calibration split (where a user would measure the policy). */
    held_out: number;
    folds: number;
    /** The target the search ran at: above the user's when the selection's optimism had to be paid for. */
    search_target: number | null;
    /** The policy the search picks at the user's own target when it could not be promised, and the labelled prompts it would need. */
    shortfall: { cost_share_of_best: number; share: PairedShare; prompts_needed: number; steps: number } | null;
  };
  /** Per model: the evaluator used and the AUROC of every evaluator the data supports. */
  signals: { model: string; chosen: string | null; auroc: Record<string, number> }[];
  pruned: string[];
  candidates_evaluated: number;
  seconds: number;
}

const signalName = (spec: EvaluatorSpec): string => (spec.type === 'min' ? `min(${spec.of.map(signalName).join(',')})` : spec.type);

export async function calibrate(opts: CalibrateOptions): Promise<CalibrationResult> {
  const log = opts.log ?? ((m: string) => console.log(m));
  const started = Date.now();
  if ((opts.target === undefined) === (opts.maxCost === undefined)) throw new Error('give exactly one of --target or --max-cost');
  const confidence = opts.confidence ?? 0.95;
  if (!(confidence > 0 && confidence < 1)) throw new Error(`--confidence must be in (0, 1), got ${confidence}`);
  if (opts.target !== undefined && !(opts.target > 0 && opts.target <= 1)) throw new Error(`--target must be in (0, 1], got ${opts.target}`);
  const split = opts.split ?? 'train';
  const name = opts.name ?? basename(opts.data).replace(/\.jsonl$/, '');
  const all = await loadDataset(opts.data);
  const rows = all.filter((r) => splitOf(r) === split);
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

  const steps: StepData[] = [];
  const chosenSignals: (Signal | null)[] = [];
  const signalReport: CalibrationResult['signals'] = [];
  for (const m of view.models) {
    const cost = Float64Array.from(rows, (r) => view.cost(r, m.name));
    const q = Float64Array.from(rows, (r) => quality(r.models[m.name]) ?? 0);
    const has = Uint8Array.from(rows, (r) => (r.models[m.name] && (r.models[m.name]!.response !== null || quality(r.models[m.name]) !== null) ? 1 : 0));
    const signals = await signalsFor(rows, m.name, view.best.name, has, manifest, allowed);
    const chosen = pickSignal(signals);
    chosenSignals.push(chosen);
    signalReport.push({
      model: m.name,
      chosen: chosen ? signalName(chosen.spec) : null,
      auroc: Object.fromEntries(signals.map((s) => [signalName(s.spec), Math.round(s.auroc * 1000) / 1000])),
    });
    let prerouter: Float64Array | null = null;
    if (manifest?.prerouter && opts.prerouter !== false && allowed('none')) {
      const oof = manifest.oof.prerouter;
      prerouter = Float64Array.from(rows, (r) => oof[r.id]?.[m.name] ?? 1);
    }
    steps.push({ name: m.name, cost, quality: q, has, conf: chosen?.conf ?? null, prerouter, meanCost: m.cost, meanQuality: m.quality });
  }
  let ladder: number[] | undefined;
  if (opts.ladder) {
    ladder = opts.ladder.map((m) => steps.findIndex((a) => a.name === m));
    if (ladder.some((i) => i < 0)) throw new Error(`--ladder names a model not in the dataset (models: ${steps.map((a) => a.name).join(', ')})`);
  }
  const reference = steps.findIndex((s) => s.name === view.best.name);
  const folds = opts.folds ?? 5;
  if (!(Number.isInteger(folds) && folds >= 0)) throw new Error(`--folds must be a whole number >= 0, got ${opts.folds}`);
  const searchStarted = Date.now();
  const found = promiseSearch(steps, {
    target: opts.target,
    maxCost: opts.maxCost,
    confidence,
    maxSteps: opts.maxSteps ?? 3,
    reference,
    ladder,
    // Policies within 1% of the best model's cost are near-ties: fewer steps win.
    tieTolerance: 0.01 * view.best.cost,
    folds,
    progress: (m) => log(`calibrate: [${((Date.now() - searchStarted) / 1000).toFixed(1)} s] ${m}`),
  });
  const chosen = found.chosen;
  if (chosen.ladder.length > 1 && chosen.acceptAll.slice(0, -1).some((a, s) => !a && !chosenSignals[chosen.ladder[s]!]))
    throw new Error('internal: an early step without an evaluator');
  const n = rows.length;
  if (opts.target !== undefined && !found.promised)
    log(`calibrate: no policy, not even ${view.best.name} alone, can promise quality ${opts.target} of it; writing the safest one`);
  const usesPrerouter = chosen.skip !== null && chosen.ladder.length > 1;
  let maxRowCost = 0;
  for (let r = 0; r < n; r++)
    maxRowCost = Math.max(
      maxRowCost,
      chosen.ladder.reduce((s, i) => s + steps[i]!.cost[r]!, 0),
    );
  const target =
    opts.target !== undefined ? `quality >= ${opts.target} x ${view.best.name} with confidence ${confidence}` : `mean cost <= $${opts.maxCost}/request`;
  const policy: PolicyFile = {
    name: `${name}-calibrated`,
    description: `Calibrated on ${basename(opts.data)} split "${split}" (${n} prompts) for ${target} by npm run calibrate`,
    steps: chosen.ladder.map((mi, s) => {
      const last = s === chosen.ladder.length - 1;
      const accept = last || chosen.acceptAll[s];
      return { model: steps[mi]!.name, evaluator: accept ? { type: 'none' } : chosenSignals[mi]!.spec, threshold: accept ? 0 : chosen.thresholds[s]! };
    }),
    evaluate_last_step: false,
    deadline_ms: 60000,
    // A per-request cap that never binds for prompts like these (twice the costliest full ladder).
    max_cost_usd: Number(Math.max(0.01, 2 * maxRowCost).toPrecision(2)),
    ...(usesPrerouter && manifest?.prerouter ? { prerouter: { model_file: manifest.prerouter, skip_below: chosen.skip! } } : {}),
  };
  const bestQ = view.best.quality;
  const costShare = (c: number) => (view.best.cost ? c / view.best.cost : 0);
  const sf = found.atTarget;
  return {
    policy,
    expected: {
      quality: chosen.quality,
      cost_per_request: chosen.cost,
      quality_share_of_best: bestQ ? chosen.quality / bestQ : 0,
      cost_share_of_best: costShare(chosen.cost),
      feasible: opts.target !== undefined ? found.share.estimate >= opts.target - 1e-12 : found.certified,
    },
    best_single: { model: view.best.name, quality: view.best.quality, cost: view.best.cost },
    promise: {
      target: opts.target ?? null,
      confidence,
      share: found.share,
      promised: opts.target !== undefined && found.promised,
      prompts: n,
      held_out: all.length - n,
      folds,
      search_target: opts.target !== undefined ? found.searchTarget : null,
      shortfall:
        opts.target !== undefined && sf && sf.cost < chosen.cost - 1e-15
          ? {
              cost_share_of_best: costShare(sf.cost),
              share: found.firstRound,
              prompts_needed: promptsNeeded(n, found.firstRound, opts.target),
              steps: sf.ladder.length,
            }
          : null,
    },
    signals: signalReport,
    pruned: found.pruned,
    candidates_evaluated: found.evaluated,
    seconds: (Date.now() - started) / 1000,
  };
}
