/**
 * The cascade itself, written once against a small set of effects so that the Temporal workflow
 * (effects = activities) and the offline routing benchmark (effects = recorded answers) run the
 * same decisions. Deterministic: no I/O, no clocks or randomness except through `effects`.
 */
import type {
  AttemptRecord,
  CascadeInput,
  CascadeResult,
  CascadeTrace,
  ChatParams,
  DeploymentRef,
  EvaluatorSpec,
  GenerateOutput,
  ModelInfo,
  PolicyStep,
} from '../common/types.js';
import { ErrorType, REQUEST_ERRORS } from '../common/errors.js';
import { accepts, costOfUsage, estimatePromptTokens, fitsAfterContextError, MIN_ATTEMPT_MS, stepFeasibility } from './policy.js';
import { buildJudgeMessages } from '../evaluators/judge-prompt.js';

export interface GenerateCall {
  /** 1-based ladder step. */
  step: number;
  model: ModelInfo;
  deployment: DeploymentRef;
  params: ChatParams;
  /** Stable per (request, step, purpose): upstream retries of this call carry the same id. */
  requestId: string;
  remainingMs: number;
  purpose: 'answer' | 'sample' | 'judge';
}

export type GenerateOutcome =
  { ok: true; output: GenerateOutput } | { ok: false; error: { type: string; message: string; retries: number; latencyMs: number | null } };

export interface EvaluateCall {
  step: number;
  spec: EvaluatorSpec;
  threshold: number;
  params: ChatParams;
  answer: GenerateOutput;
  model: string;
  samples?: string[];
  judgeVerdict?: string;
}

export interface RouteDecision {
  /** Deployments to try, in order (healthy first; open circuits left out). */
  deployments: DeploymentRef[];
  /** Measured P50 latency of the model, when the router has measured it. */
  measuredP50Ms: number | null;
}

export interface DeploymentReport {
  deploymentId: string;
  model: string;
  ok: boolean;
  errorType?: string;
  latencyMs?: number | null;
}

export interface CascadeEffects {
  now(): number;
  route(model: ModelInfo): Promise<RouteDecision>;
  generate(call: GenerateCall): Promise<GenerateOutcome>;
  evaluate(call: EvaluateCall): Promise<{ confidence: number; reasons: string[] }>;
  /** Outcome of a call, for circuit breakers and latency estimates. */
  report(report: DeploymentReport): Promise<void>;
  /** Prompt-only prediction per ladder step of P(step's answer is good enough). Optional. */
  preroute?(policySteps: PolicyStep[], params: ChatParams): Promise<number[] | null>;
  /** Called after every recorded attempt; the workflow mirrors it into the Temporal UI. */
  onProgress?(trace: CascadeTrace, note: string): void;
}

/** Thrown when no answer can be returned; carries the trace for the caller. */
export class CascadeFailure extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly trace: CascadeTrace,
  ) {
    super(message);
    this.name = 'CascadeFailure';
  }
}

interface Candidate {
  step: number;
  model: ModelInfo;
  output: GenerateOutput;
  confidence: number;
}

type CallResult = { ok: true; output: GenerateOutput; deployment: DeploymentRef } | { ok: false; type: string; message: string };
type CallModel = (
  step: number,
  model: ModelInfo,
  params: ChatParams,
  purpose: GenerateCall['purpose'],
  suffix: string,
  route?: RouteDecision,
) => Promise<CallResult>;

/** Extra answers a self-consistency evaluator compares (0 when none), looking inside `min` combinations. */
export function extraSamplesOf(spec: EvaluatorSpec): number {
  if (spec.type === 'self-consistency') return Math.max(1, (spec.samples ?? 3) - 1);
  if (spec.type === 'min' && Array.isArray(spec.of)) return Math.max(0, ...(spec.of as EvaluatorSpec[]).map(extraSamplesOf));
  return 0;
}

/** The judge model a step's evaluator calls, if any, looking inside `min` combinations. */
export function judgeModelOf(spec: EvaluatorSpec): string | null {
  if (spec.type === 'judge') return spec.model ?? null;
  if (spec.type === 'min' && Array.isArray(spec.of)) return (spec.of as EvaluatorSpec[]).map(judgeModelOf).find((m) => m !== null) ?? null;
  return null;
}

/** Extra model calls an evaluator makes besides the step's own answer. */
export function extraCallsOf(spec: EvaluatorSpec): number {
  return extraSamplesOf(spec) + (judgeModelOf(spec) ? 1 : 0);
}

export async function runCascade(input: CascadeInput, workflowId: string, fx: CascadeEffects): Promise<CascadeResult> {
  const { policy, params } = input;
  const startedAt = fx.now();
  const deadline = startedAt + (input.deadlineMs ?? policy.deadline_ms);
  const maxCostUsd = input.maxCostUsd ?? policy.max_cost_usd;
  const promptTokens = estimatePromptTokens(params);
  const trace: CascadeTrace = { workflow_id: workflowId, policy: policy.name, final_step: null, escalations: 0, cost_usd: 0, attempts: [] };
  const record = (a: AttemptRecord, note: string) => {
    trace.attempts.push(a);
    trace.cost_usd += a.cost_usd;
    fx.onProgress?.(trace, note);
  };
  const modelOf = (name: string): ModelInfo => {
    const m = input.models[name];
    if (!m) throw new CascadeFailure(ErrorType.InvalidRequest, `policy ${policy.name} names unknown model ${name}`, trace);
    return m;
  };

  /** Calls one model, failing over across its deployments; bills only completed calls. */
  const callModel: CallModel = async (step, model, callParams, purpose, suffix, knownRoute) => {
    const route = knownRoute ?? (await fx.route(model));
    if (route.deployments.length === 0) {
      const message = `every deployment of ${model.name} is cut off by its circuit breaker`;
      record(noAnswer(step, model.name, null, ErrorType.CircuitOpen, message), message);
      return { ok: false, type: ErrorType.CircuitOpen, message };
    }
    let last: { type: string; message: string } = { type: ErrorType.AllDeploymentsFailed, message: `no deployment of ${model.name} answered` };
    for (const deployment of route.deployments) {
      const remainingMs = deadline - fx.now();
      if (remainingMs < MIN_ATTEMPT_MS) {
        const message = `deadline reached before ${model.name} answered`;
        record(noAnswer(step, model.name, deployment, ErrorType.DeadlineExceeded, message), message);
        return { ok: false, type: ErrorType.DeadlineExceeded, message };
      }
      const outcome = await fx.generate({ step, model, deployment, params: callParams, requestId: `${workflowId}/${step}/${suffix}`, remainingMs, purpose });
      if (outcome.ok) {
        const cost = costOfUsage(model, outcome.output.usage);
        await fx.report({ deploymentId: deployment.id, model: model.name, ok: true, latencyMs: outcome.output.latencyMs });
        if (purpose !== 'answer') {
          // Samples and judge verdicts are billed to the request but are not answers in the trace.
          record(
            {
              step,
              model: model.name,
              pool: deployment.pool,
              deployment: deployment.id,
              latency_ms: outcome.output.latencyMs,
              confidence: null,
              accepted: false,
              error: null,
              detail: purpose,
              cost_usd: cost,
              retries: outcome.output.attempt - 1,
            },
            `${purpose} from ${model.name}`,
          );
        }
        return { ok: true, output: outcome.output, deployment };
      }
      const { error } = outcome;
      await fx.report({ deploymentId: deployment.id, model: model.name, ok: false, errorType: error.type, latencyMs: error.latencyMs });
      record(
        noAnswer(step, model.name, deployment, error.type, error.message, { latency_ms: error.latencyMs, retries: error.retries }),
        `step ${step} · ${model.name} on ${deployment.pool} failed: ${error.type}`,
      );
      last = error;
      if (REQUEST_ERRORS.includes(error.type)) return { ok: false, ...error };
    }
    return {
      ok: false,
      type: last.type === ErrorType.NoCapacity || last.type === ErrorType.CircuitOpen ? last.type : ErrorType.AllDeploymentsFailed,
      message: last.message,
    };
  };

  const prerouted = policy.prerouter && fx.preroute ? await fx.preroute(policy.steps, params) : null;
  let best: Candidate | null = null;
  let contextFailedWindow = 0;
  let lastFailure: { type: string; message: string } | null = null;

  for (let i = 0; i < policy.steps.length; i++) {
    const stepSpec = policy.steps[i]!;
    const step = i + 1;
    const isLast = i === policy.steps.length - 1;
    const model = modelOf(stepSpec.model);
    const skip = (reason: string, detail: string) => {
      record(noAnswer(step, model.name, null, `skipped:${reason}`, detail), `step ${step} skipped: ${detail}`);
      lastFailure = {
        type:
          reason === 'context_length'
            ? ErrorType.ContextLengthExceeded
            : reason === 'deadline'
              ? ErrorType.DeadlineExceeded
              : reason === 'budget'
                ? ErrorType.BudgetExceeded
                : ErrorType.AllDeploymentsFailed,
        message: detail,
      };
    };

    if (contextFailedWindow > 0 && !fitsAfterContextError(contextFailedWindow, model)) {
      skip('context_length', `${model.name}'s context window (${model.contextWindow}) is no larger than one that already refused the prompt`);
      continue;
    }
    const p = prerouted?.[i];
    if (!isLast && p !== undefined && policy.prerouter && p < policy.prerouter.skip_below) {
      skip('prerouter', `pre-router predicts ${p.toFixed(2)} < ${policy.prerouter.skip_below} for ${model.name}`);
      continue;
    }
    const needsEvaluation = !isLast || policy.evaluate_last_step;
    const route = await fx.route(model);
    const feasible = stepFeasibility({
      model,
      promptTokens,
      maxTokens: params.max_tokens,
      remainingMs: deadline - fx.now(),
      measuredP50Ms: route.measuredP50Ms,
      spentUsd: trace.cost_usd,
      maxCostUsd,
      extraCalls: needsEvaluation ? extraCallsOf(stepSpec.evaluator) : 0,
    });
    if (!feasible.ok) {
      skip(feasible.reason, feasible.detail);
      continue;
    }

    const answer = await callModel(step, model, withLogprobsIfNeeded(params, stepSpec.evaluator), 'answer', 'answer', route);
    if (!answer.ok) {
      if (answer.type === ErrorType.ContentPolicyViolation) {
        throw new CascadeFailure(answer.type, answer.message, trace);
      }
      if (answer.type === ErrorType.ContextLengthExceeded) contextFailedWindow = Math.max(contextFailedWindow, model.contextWindow);
      lastFailure = answer;
      if (!isLast) trace.escalations++;
      continue;
    }
    const output = answer.output;
    const cost = costOfUsage(model, output.usage);
    const base: AttemptRecord = {
      step,
      model: model.name,
      pool: answer.deployment.pool,
      deployment: answer.deployment.id,
      latency_ms: output.latencyMs,
      confidence: null,
      accepted: true,
      error: null,
      cost_usd: cost,
      retries: output.attempt - 1,
    };

    if (!needsEvaluation) {
      record({ ...base, detail: 'last step: accepted without evaluation' }, `step ${step} · ${model.name} on ${answer.deployment.pool}: accepted (last step)`);
      return finish(trace, step, model, output, input.requestHash);
    }

    const extra = await gatherEvidence(stepSpec, step, model, params, output, input, callModel);
    const evaluation = await fx.evaluate({
      step,
      spec: stepSpec.evaluator,
      threshold: stepSpec.threshold,
      params,
      answer: output,
      model: model.name,
      ...extra,
    });
    const ok = accepts(evaluation.confidence, stepSpec.threshold);
    const verdict = `${evaluation.confidence.toFixed(2)} ${ok ? '≥' : '<'} ${stepSpec.threshold}`;
    record(
      {
        ...base,
        confidence: evaluation.confidence,
        accepted: ok,
        detail: `${stepSpec.evaluator.type}: ${verdict}${evaluation.reasons.length ? ` (${evaluation.reasons.join('; ')})` : ''}`,
      },
      `step ${step} · ${model.name} on ${answer.deployment.pool}: ${verdict}, ${ok ? 'accept' : 'escalate'}`,
    );
    if (ok) return finish(trace, step, model, output, input.requestHash);
    if (!best || evaluation.confidence > best.confidence) best = { step, model, output, confidence: evaluation.confidence };
    if (!isLast) trace.escalations++;
  }

  const failure: { type: string; message: string } = lastFailure ?? { type: ErrorType.AllDeploymentsFailed, message: 'no step produced an answer' };
  if (best) {
    // Better a rejected answer, clearly flagged, than none when every stronger step failed.
    trace.degraded = true;
    fx.onProgress?.(trace, `no answer accepted (${failure.type}); returning the best rejected answer from step ${best.step}`);
    return finish(trace, best.step, best.model, best.output, input.requestHash);
  }
  throw new CascadeFailure(failure.type, failure.message, trace);
}

/** The trace record of an attempt that gave no answer: nothing is billed for it. */
function noAnswer(
  step: number,
  model: string,
  deployment: DeploymentRef | null,
  error: string,
  detail: string,
  measured: Pick<AttemptRecord, 'latency_ms' | 'retries'> = { latency_ms: null },
): AttemptRecord {
  return {
    step,
    model,
    pool: deployment?.pool ?? null,
    deployment: deployment?.id ?? null,
    confidence: null,
    accepted: false,
    error,
    detail,
    cost_usd: 0,
    ...measured,
  };
}

function finish(trace: CascadeTrace, step: number, model: ModelInfo, output: GenerateOutput, requestHash: string): CascadeResult {
  trace.final_step = step;
  return {
    requestHash,
    content: output.content,
    finishReason: output.finishReason,
    model: model.name,
    usage: output.usage,
    logprobs: output.logprobs,
    cascade: trace,
  };
}

/** A logprob evaluator (also inside `min`) needs token logprobs even when the caller did not ask for them. */
function usesLogprobs(spec: EvaluatorSpec): boolean {
  return spec.type === 'logprob' || (spec.type === 'min' && Array.isArray(spec.of) && (spec.of as EvaluatorSpec[]).some(usesLogprobs));
}

function withLogprobsIfNeeded(params: ChatParams, spec: EvaluatorSpec): ChatParams {
  return usesLogprobs(spec) && !params.logprobs ? { ...params, logprobs: true } : params;
}

/** Self-consistency samples and judge verdicts: extra model calls made before evaluating. */
async function gatherEvidence(
  stepSpec: PolicyStep,
  step: number,
  model: ModelInfo,
  params: ChatParams,
  output: GenerateOutput,
  input: CascadeInput,
  callModel: CallModel,
): Promise<{ samples?: string[]; judgeVerdict?: string }> {
  const spec = stepSpec.evaluator;
  const extraSamples = extraSamplesOf(spec);
  const judgeName = judgeModelOf(spec);
  const judge = judgeName ? input.models[judgeName] : undefined;
  const sampleParams: ChatParams = { ...params, temperature: params.temperature && params.temperature > 0 ? params.temperature : 0.7 };
  const judgeParams: ChatParams = { messages: buildJudgeMessages({ messages: params.messages, answer: output.content }), temperature: 0, max_tokens: 16 };
  // The samples and the judge's verdict are independent calls, so all are asked at once: the step
  // waits for the slowest, not their sum. They are used by index, not by arrival, so the
  // evaluation stays deterministic.
  const [samples, verdict] = await Promise.all([
    Promise.all(Array.from({ length: extraSamples }, (_, s) => callModel(step, model, sampleParams, 'sample', `sample-${s + 1}`))),
    judge ? callModel(step, judge, judgeParams, 'judge', 'judge') : null,
  ]);
  return {
    ...(extraSamples > 0 && { samples: [output.content, ...samples.flatMap((r) => (r.ok ? [r.output.content] : []))] }),
    ...(verdict?.ok && { judgeVerdict: verdict.output.content }),
  };
}
