/**
 * Offline replay: every prompt goes through the workflow's own cascade (`runCascade` from
 * workflows/cascade-core.ts) with recorded answers as the model calls and the real evaluators
 * (createEvaluator, the same code the `evaluate` activity runs). Nothing here re-implements a
 * routing decision; it only supplies effects and reads the trace.
 *
 * The per-prompt `DecisionRecord` is what live mode compares against.
 */
import type { DatasetRow, ModelPrice } from '../../common/dataset.js';
import { ErrorType } from '../../common/errors.js';
import type { CascadeInput, ChatParams, GenerateOutput, ModelInfo, PolicySpec } from '../../common/types.js';
import { runCascade, type CascadeEffects, type EvaluateCall } from '../../workflows/cascade-core.js';
import { evaluationInputFromCall } from '../../evaluators/from-call.js';
import { createEvaluator, loadPrerouter, type Evaluator, type EvaluatorSpec } from '../../evaluators/index.js';
import type { Prerouter } from '../../evaluators/prerouter.js';
import { evaluatorSpecSchema } from '../../evaluators/spec.js';
import { quality, type DatasetView } from '../../evaluators/dataset-adapter.js';
import type { LatencyModel } from './latency-model.js';

export interface StepDecision {
  step: number;
  model: string;
  /** null when the step was skipped or its call failed. */
  confidence: number | null;
  accepted: boolean;
  /** 'skipped:<reason>' or an error type, when the step produced no evaluated answer. */
  outcome: string | null;
}

export interface DecisionRecord {
  id: string;
  /** Model whose answer was returned, and its 1-based step. */
  final_model: string | null;
  final_step: number | null;
  escalations: number;
  degraded: boolean;
  cost_usd: number;
  /** Recorded quality of the returned answer (1/0 or score); null when unlabelled. */
  quality: number | null;
  steps: StepDecision[];
  /**
   * Simulated end-to-end latency and time to first token (offline only): recorded `latency_ms`
   * per call, else the latency model; an answer that needs no evaluation streams live (its own
   * first token), an evaluated one is held until accepted. Evaluator time (< 1 ms) is not added.
   */
  latency_ms?: number;
  ttft_ms?: number;
}

export interface ReplayDeps {
  /** Base for relative model files in the policy (default: repository root). */
  modelsDir?: string;
  /** Latency of calls the dataset has no `latency_ms` for (bench/lib/latency-model.ts). */
  latency?: LatencyModel;
}

/** Effects and caches for one dataset and one policy; thresholds may vary between runs. */
export class Replayer {
  private evaluators = new Map<string, Promise<Evaluator>>();
  private evaluations = new Map<string, { confidence: number; reasons: string[] }>();
  private prerouted = new Map<string, number[] | null>();
  private prerouter: Promise<Prerouter> | null = null;
  readonly models: Record<string, ModelInfo>;

  constructor(
    private readonly view: DatasetView,
    prices: ModelPrice[],
    private readonly deps: ReplayDeps = {},
  ) {
    this.models = replayModels(view, prices);
  }

  private evaluator(spec: EvaluatorSpec): Promise<Evaluator> {
    const key = JSON.stringify(spec);
    let e = this.evaluators.get(key);
    if (!e) {
      e = createEvaluator(evaluatorSpecSchema.parse(spec), { modelsDir: this.deps.modelsDir });
      this.evaluators.set(key, e);
    }
    return e;
  }

  async replay(row: DatasetRow, policy: PolicySpec): Promise<DecisionRecord> {
    let clock = 0;
    const calls: { step: number; start: number; ttftMs: number; latencyMs: number }[] = [];
    const params: ChatParams = { messages: [{ role: 'user', content: row.prompt }] };
    const fx: CascadeEffects = {
      now: () => clock,
      route: async (model) => ({ deployments: model.deployments, measuredP50Ms: null }),
      report: async () => {},
      generate: async (call) => {
        const o = row.models[call.model.name];
        if (call.purpose !== 'answer' || !o || (o.response === null && quality(o) === null)) {
          // Recorded data has one answer per model: no extra samples, no judge verdicts.
          return {
            ok: false,
            error: { type: ErrorType.UpstreamError, message: `no recorded ${call.purpose} for ${call.model.name}`, retries: 0, latencyMs: null },
          };
        }
        const modelled = this.deps.latency?.(
          call.model.name,
          o.outputTokens ?? Math.ceil((o.response ?? '').length / 4),
          policy.steps[call.step - 1]?.pools?.[0],
        );
        const latencyMs = o.latencyMs ?? modelled?.totalMs ?? 0;
        const ttftMs = o.latencyMs !== null ? o.latencyMs : (modelled?.ttftMs ?? 0);
        calls.push({ step: call.step, start: clock, ttftMs, latencyMs });
        clock += latencyMs;
        return { ok: true, output: recordedOutput(this.view, row, call.model, latencyMs) };
      },
      evaluate: async (call: EvaluateCall) => {
        const key = `${row.id}|${call.step}|${call.model}|${JSON.stringify(call.spec)}`;
        let ev = this.evaluations.get(key);
        if (!ev) {
          const evaluator = await this.evaluator(call.spec as EvaluatorSpec);
          ev = await evaluator.evaluate(evaluationInputFromCall(call));
          this.evaluations.set(key, ev);
        }
        return ev;
      },
      preroute: async (steps, p) => {
        if (!policy.prerouter) return null;
        if (this.prerouted.has(row.id)) return this.prerouted.get(row.id)!;
        this.prerouter ??= loadPrerouter(policy.prerouter.model_file, { modelsDir: this.deps.modelsDir });
        const pr = await this.prerouter;
        const byModel = await pr.predict(p.messages);
        const out = steps.map((s) => byModel[s.model] ?? 1);
        this.prerouted.set(row.id, out);
        return out;
      },
    };
    const input: CascadeInput = {
      requestId: row.id,
      requestHash: row.id,
      params,
      policy: { ...policy, deadline_ms: Number.MAX_SAFE_INTEGER / 4 },
      models: this.models,
      retry: { initialIntervalMs: 0, backoffCoefficient: 1, maximumIntervalMs: 0, maximumAttempts: 1, scheduleToStartTimeoutMs: 1 },
    };
    try {
      const result = await runCascade(input, `replay-${row.id}`, fx);
      const decision = decisionOf(row, result.cascade, result.model);
      if (!this.deps.latency) return decision;
      // The answer streams live when nothing evaluates it; otherwise it is shown once accepted.
      const final = [...calls].reverse().find((c) => c.step === result.cascade.final_step);
      const live = result.cascade.final_step === policy.steps.length && !policy.evaluate_last_step;
      const ttft = final ? final.start + (live ? final.ttftMs : final.latencyMs) : clock;
      return { ...decision, latency_ms: clock, ttft_ms: ttft };
    } catch (err) {
      const trace = (err as { trace?: import('../../common/types.js').CascadeTrace }).trace;
      if (!trace) throw err;
      return decisionOf(row, trace, null);
    }
  }
}

/** A per-prompt decision record from a cascade trace: live mode builds the same record from the workflow result. */
export function decisionOf(row: DatasetRow, trace: import('../../common/types.js').CascadeTrace, finalModel: string | null): DecisionRecord {
  const steps: StepDecision[] = trace.attempts
    .filter((a) => a.detail !== 'sample' && a.detail !== 'judge')
    .map((a) => ({ step: a.step, model: a.model, confidence: a.confidence, accepted: a.error === null && a.accepted, outcome: a.error }));
  return {
    id: row.id,
    final_model: finalModel,
    final_step: trace.final_step,
    escalations: trace.escalations,
    degraded: trace.degraded ?? false,
    cost_usd: trace.cost_usd,
    quality: finalModel ? quality(row.models[finalModel]) : null,
    steps,
  };
}

/**
 * Registry entries for replay. Prices come from models.json when it has them; otherwise a blended
 * price is derived from recorded costs and token counts, so the workflow's cost arithmetic
 * reproduces the recorded cost of each answer.
 */
function replayModels(view: DatasetView, prices: ModelPrice[]): Record<string, ModelInfo> {
  const out: Record<string, ModelInfo> = {};
  for (const m of view.models) {
    const p = prices.find((x) => x.name === m.name);
    let inP = p?.inputUsdPer1M ?? p?.outputUsdPer1M ?? null;
    let outP = p?.outputUsdPer1M ?? p?.inputUsdPer1M ?? null;
    if (inP === null || outP === null) {
      let cost = 0;
      let tokens = 0;
      for (const r of view.rows) {
        const o = r.models[m.name];
        if (o?.costUsd != null && o.inputTokens != null) {
          cost += o.costUsd;
          tokens += o.inputTokens + (o.outputTokens ?? 0);
        }
      }
      inP = outP = tokens > 0 ? (cost / tokens) * 1e6 : 1;
    }
    out[m.name] = {
      name: m.name,
      inputUsdPer1M: inP,
      outputUsdPer1M: outP,
      contextWindow: Number.MAX_SAFE_INTEGER / 4,
      p50LatencyMs: 1,
      p99LatencyMs: 1,
      expectedOutputTokens: 1,
      firstTokenTimeoutMs: 1e9,
      streamIdleTimeoutMs: 1e9,
      attemptTimeoutMs: 1e9,
      deployments: [{ id: `replay:${m.name}`, pool: 'replay', taskQueue: 'replay', fallback: false }],
    };
  }
  return out;
}

/**
 * The recorded answer as a model output. Usage is chosen so that the workflow's cost arithmetic
 * (tokens × registry price) gives exactly the recorded cost of this answer.
 */
function recordedOutput(view: DatasetView, row: DatasetRow, model: ModelInfo, latencyMs: number): GenerateOutput {
  const o = row.models[model.name]!;
  const cost = view.cost(row, model.name);
  const promptTokens = model.inputUsdPer1M > 0 ? (cost * 1e6) / model.inputUsdPer1M : 0;
  return {
    content: o.response ?? '',
    finishReason: 'stop',
    logprobs: o.logprob != null ? [{ token: '', logprob: o.logprob }] : null,
    usage: { prompt_tokens: promptTokens, completion_tokens: 0, total_tokens: promptTokens },
    upstreamModel: model.name,
    latencyMs,
    firstTokenMs: null,
    attempt: 1,
    pool: 'replay',
  };
}
