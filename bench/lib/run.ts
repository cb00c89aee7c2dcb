/**
 * The offline routing benchmark: replays a split of a dataset through a policy (bench/lib/replay.ts,
 * i.e. the workflow's own runCascade and the real evaluators), sweeps the acceptance threshold, and
 * computes the report (metrics.ts). Dataset- and model-agnostic: 2 to 12 models, any price scale.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import YAML from 'yaml';
import { loadDataset, loadModelPrices, splitOf } from '../../common/dataset.js';
import type { PolicySpec } from '../../common/types.js';
import { policySchema } from '../../config/schema.js';
import { viewOf } from '../../evaluators/dataset-adapter.js';
import {
  aiq,
  apgr,
  baselines,
  costAtQuality,
  cpt,
  randomAtCost,
  stepAuroc,
  summarise,
  type Baselines,
  type Point,
  type RunSummary,
  type SweepPoint,
} from './metrics.js';
import { Replayer, type DecisionRecord } from './replay.js';
import { farmLatencyModel, latencyStats, type LatencyStats } from './latency-model.js';

export interface RoutingReport {
  dataset: string;
  split: string;
  requests: number;
  policy: string;
  label_kind: 'binary' | 'graded';
  ladder: { model: string; evaluator: string; threshold: number | null }[];
  prerouter: { model_file: string; skip_below: number } | null;
  summary: RunSummary;
  policy_result: Point;
  baselines: Baselines;
  random_at_same_cost: number;
  step_auroc: { step: number; model: string; auroc: number | null; n: number }[];
  /** RouteLLM metrics, when the ladder has exactly two models. */
  two_model: { weak: string; strong: string; apgr: number; cpt50: number; cpt80: number; cpt95: number } | null;
  aiq: number;
  /** Cost per request at 95% of the best single model's quality, and the saving against it. */
  cost_at_95: { cost: number; saving: number } | null;
  sweep: SweepPoint[];
  /**
   * Simulated latency (recorded per-call latency, else the farm's timing model; streaming rules of
   * the live stack): the policy's, and each single model's when every request goes to it.
   */
  latency: { policy: LatencyStats | null; single: Record<string, LatencyStats | null> };
  seconds: number;
}

export async function loadPolicyFile(file: string): Promise<PolicySpec> {
  const raw = YAML.parse(await readFile(file, 'utf8')) as unknown;
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return { ...parsed.data, name: parsed.data.name ?? basename(file).replace(/\.ya?ml$/, '') } as PolicySpec;
}

export interface RunOptions {
  data: string;
  policy: PolicySpec;
  split?: string;
  /** Threshold values tried in the sweep (default 40 quantiles of the observed confidences). */
  sweepSize?: number;
  modelsDir?: string;
  onDecision?: (d: DecisionRecord) => void;
}

export async function runRoutingBenchmark(opts: RunOptions): Promise<{ report: RoutingReport; decisions: DecisionRecord[] }> {
  const started = Date.now();
  const split = opts.split ?? 'test';
  const all = await loadDataset(opts.data);
  const rows = split === 'all' ? all : all.filter((r) => splitOf(r) === split);
  if (rows.length === 0) throw new Error(`${opts.data}: no rows in split "${split}"`);
  const view = viewOf(rows, await loadModelPrices(opts.data));
  const known = new Set(view.models.map((m) => m.name));
  for (const s of opts.policy.steps)
    if (!known.has(s.model))
      throw new Error(`policy ${opts.policy.name}: model ${s.model} is not in ${basename(opts.data)} (models: ${[...known].join(', ')})`);
  const latency = await farmLatencyModel();
  const replayer = new Replayer(view, await loadModelPrices(opts.data), { modelsDir: opts.modelsDir, latency });
  const latencyOf = (ds: DecisionRecord[]) =>
    latencyStats(ds.flatMap((d) => (d.latency_ms !== undefined ? [{ latency: d.latency_ms, ttft: d.ttft_ms ?? d.latency_ms }] : [])));
  // One model for every request: its answer needs no evaluation, so it streams from its first token.
  const singleLatency = Object.fromEntries(
    view.models.map((m) => [
      m.name,
      latencyStats(
        rows.flatMap((r) => {
          const o = r.models[m.name];
          const l = o
            ? o.latencyMs !== null
              ? { ttftMs: o.latencyMs, totalMs: o.latencyMs }
              : latency(m.name, o.outputTokens ?? Math.ceil((o.response ?? '').length / 4))
            : null;
          return l ? [{ latency: l.totalMs, ttft: l.ttftMs }] : [];
        }),
      ),
    ]),
  );
  const ladder = opts.policy.steps.map((s) => s.model);

  const replayAll = async (policy: PolicySpec, onDecision?: (d: DecisionRecord) => void) => {
    const out: DecisionRecord[] = [];
    for (const row of rows) {
      const d = await replayer.replay(row, policy);
      onDecision?.(d);
      out.push(d);
    }
    return out;
  };
  const decisions = await replayAll(opts.policy, opts.onDecision);
  const b = baselines(view);
  const summary = summarise(decisions, view, b, ladder);

  // Sweep one threshold shared by every non-last step, over the confidences actually observed.
  const observed = decisions
    .flatMap((d) => d.steps.filter((s) => s.confidence !== null && s.step < ladder.length).map((s) => s.confidence!))
    .sort((a, b) => a - b);
  const size = opts.sweepSize ?? 40;
  const thresholds = new Set<number>([0, 1.000001]);
  for (let i = 0; i < size && observed.length; i++) thresholds.add(observed[Math.min(observed.length - 1, Math.floor((i / size) * observed.length))]!);
  for (const s of opts.policy.steps.slice(0, -1)) thresholds.add(s.threshold);
  // A ladder whose early steps always accept routes by the pre-router alone: sweep its skip level.
  const prerouterOnly = !!opts.policy.prerouter && opts.policy.steps.slice(0, -1).every((s) => s.evaluator.type === 'none');
  const sweepValues = prerouterOnly ? Array.from({ length: 41 }, (_, i) => i / 40).concat(opts.policy.prerouter!.skip_below, 1.000001) : [...thresholds];
  const sweep: SweepPoint[] = [];
  for (const t of [...new Set(sweepValues)].sort((a, b) => a - b)) {
    if (ladder.length < 2) break;
    const policy: PolicySpec = prerouterOnly
      ? { ...opts.policy, prerouter: { ...opts.policy.prerouter!, skip_below: t } }
      : { ...opts.policy, steps: opts.policy.steps.map((s, i) => (i < ladder.length - 1 ? { ...s, threshold: t } : s)) };
    const ds = await replayAll(policy);
    const s = summarise(ds, view, b, ladder);
    sweep.push({
      threshold: t,
      cost: s.cost_per_request_usd,
      quality: s.quality,
      strong_share: s.last_step_call_rate,
      ...(latencyOf(ds) && { latency_p50_ms: latencyOf(ds)!.latency_p50_ms }),
    });
  }

  let twoModel: RoutingReport['two_model'] = null;
  if (ladder.length === 2) {
    const weak = b.single.find((s) => s.model === ladder[0])!.quality;
    const strong = b.single.find((s) => s.model === ladder[1])!.quality;
    twoModel = {
      weak: ladder[0]!,
      strong: ladder[1]!,
      apgr: apgr(sweep, weak, strong),
      cpt50: cpt(sweep, weak, strong, 0.5),
      cpt80: cpt(sweep, weak, strong, 0.8),
      cpt95: cpt(sweep, weak, strong, 0.95),
    };
  }
  const policyPoint = { cost: summary.cost_per_request_usd, quality: summary.quality };
  const at95 = costAtQuality([...sweep, policyPoint], 0.95 * b.best.quality);
  const report: RoutingReport = {
    dataset: basename(opts.data),
    split,
    requests: rows.length,
    policy: opts.policy.name,
    label_kind: view.labelKind,
    ladder: opts.policy.steps.map((s, i) => ({
      model: s.model,
      evaluator: s.evaluator.type,
      threshold: i < ladder.length - 1 || opts.policy.evaluate_last_step ? s.threshold : null,
    })),
    prerouter: opts.policy.prerouter ?? null,
    summary,
    policy_result: policyPoint,
    baselines: b,
    random_at_same_cost: randomAtCost(b, summary.cost_per_request_usd),
    // An always-accepting step (`none`) has no confidence to rank with.
    step_auroc: stepAuroc(decisions, rows, view.best.name, ladder).map((a) =>
      opts.policy.steps[a.step - 1]!.evaluator.type === 'none' ? { ...a, auroc: null } : a,
    ),
    two_model: twoModel,
    aiq: aiq(sweep.length ? sweep : [policyPoint]),
    cost_at_95: at95 === null ? null : { cost: at95, saving: at95 > 0 ? b.best.cost / at95 : Infinity },
    sweep,
    latency: { policy: latencyOf(decisions), single: singleLatency },
    seconds: (Date.now() - started) / 1000,
  };
  return { report, decisions };
}
