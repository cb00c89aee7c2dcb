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
  EarlyAbortOptions,
  EvaluatorSpec,
  GenerateOutput,
  ModelInfo,
  PolicyStep,
} from '../common/types.js';
import type { StreamKind } from '../common/stream.js';
import { ErrorType, REQUEST_ERRORS } from '../common/errors.js';
import {
  accepts,
  cancelledCallCost,
  costOfUsage,
  deploymentFits,
  deploymentWindow,
  earlyAbortOptions,
  estimatePromptTokens,
  firstTokenShareMs,
  fitsAfterContextError,
  hedgeReason,
  MIN_ATTEMPT_MS,
  modelWindow,
  preferPools,
  roundUsd,
  savedByEarlyStop,
  stepFeasibility,
  tokensNeeded,
} from './policy.js';
import { extraCallsOf, gatherEvidence, withLogprobsIfNeeded } from './evidence.js';
import { raceSteps, type Candidate, type StepOutcome } from './hedge.js';

export interface GenerateCall {
  /** 1-based ladder step. */
  step: number;
  model: ModelInfo;
  deployment: DeploymentRef;
  params: ChatParams;
  /** Stable per (request, step, purpose): upstream retries of this call carry the same id. */
  requestId: string;
  remainingMs: number;
  /** This attempt's share of the model's first-token limit (see firstTokenShareMs). */
  firstTokenTimeoutMs: number;
  /** The deployment's circuit is open and this call is its probe: one attempt, no retry ladder. */
  probe: boolean;
  purpose: 'answer' | 'sample' | 'judge';
  /** Send the deltas to the client: the answer itself (`live`) or an opt-in draft. */
  stream?: StreamKind;
  /** Stop the call once the step's evaluator is sure to reject the answer (evaluators/prefix.ts). */
  earlyAbort?: { evaluator: EvaluatorSpec; threshold: number; options: EarlyAbortOptions };
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
  /** Ids of deployments offered as the probe of their open circuit. */
  probes?: string[];
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
  /**
   * Runs `fn` so that it can be cancelled (a hedged step that lost). Without it, hedged steps run
   * to their end and the loser is simply ignored.
   */
  cancellable?<T>(fn: () => Promise<T>): { promise: Promise<T>; cancel(): void };
  /** A durable timer (tail-latency hedges wait on it). Without it, `hedge.after_ms` is not used. */
  sleep?(ms: number): Promise<void>;
  /**
   * Called before every model call: makes the results of earlier calls durable first, where the
   * effects hold them back (local-activity dispatch records them only when the workflow task ends).
   */
  checkpoint?(): Promise<void>;
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

type CallResult =
  | { ok: true; output: GenerateOutput; deployment: DeploymentRef }
  /** refusedWindow: the largest window of a deployment that refused the prompt as too long (0: none did). */
  | { ok: false; type: string; message: string; refusedWindow: number };
export type CallModel = (
  step: number,
  model: ModelInfo,
  params: ChatParams,
  purpose: GenerateCall['purpose'],
  suffix: string,
  route?: RouteDecision,
  delivery?: Pick<GenerateCall, 'stream' | 'earlyAbort'>,
) => Promise<CallResult>;

export async function runCascade(input: CascadeInput, workflowId: string, fx: CascadeEffects): Promise<CascadeResult> {
  const { policy, params } = input;
  const startedAt = fx.now();
  const deadline = startedAt + (input.deadlineMs ?? policy.deadline_ms);
  const maxCostUsd = input.maxCostUsd ?? policy.max_cost_usd;
  const promptTokens = estimatePromptTokens(params);
  const trace: CascadeTrace = { workflow_id: workflowId, policy: policy.name, final_step: null, escalations: 0, cost_usd: 0, attempts: [] };
  const record = (a: AttemptRecord, note: string) => {
    trace.attempts.push(a);
    trace.cost_usd = roundUsd(trace.cost_usd + a.cost_usd);
    fx.onProgress?.(trace, note);
  };
  const modelOf = (name: string): ModelInfo => {
    const m = input.models[name];
    if (!m) throw new CascadeFailure(ErrorType.InvalidRequest, `policy ${policy.name} names unknown model ${name}`, trace);
    return m;
  };

  /** Calls one model, failing over across its deployments; bills only completed calls. */
  const callModel: CallModel = async (step, model, callParams, purpose, suffix, knownRoute, delivery) => {
    const route = knownRoute ?? (await fx.route(model));
    if (route.deployments.length === 0) {
      const message = `every deployment of ${model.name} is cut off by its circuit breaker`;
      record(noAnswer(step, model.name, null, ErrorType.CircuitOpen, message), message);
      return { ok: false, type: ErrorType.CircuitOpen, message, refusedWindow: 0 };
    }
    let last: { type: string; message: string } = { type: ErrorType.AllDeploymentsFailed, message: `no deployment of ${model.name} answered` };
    // Set after the first checkpoint: time the workflow spent before the first attempt (a router
    // worker that died and was replaced, with local dispatch) is not the caller's first-token wait.
    let calledAt: number | null = null;
    const needed = tokensNeeded(callParams);
    let refusedWindow = 0;
    const fits = (d: DeploymentRef) => deploymentFits(deploymentWindow(model, d), needed, refusedWindow);
    for (const [i, deployment] of route.deployments.entries()) {
      if (!fits(deployment)) {
        const window = deploymentWindow(model, deployment);
        const message = `${deployment.id}'s context window (${window}) cannot take ~${needed} tokens${refusedWindow > window ? ` (a window of ${refusedWindow} refused them)` : ''}`;
        record(noAnswer(step, model.name, deployment, 'skipped:context_length', message), message);
        last = { type: ErrorType.ContextLengthExceeded, message };
        continue;
      }
      const remainingMs = deadline - fx.now();
      if (remainingMs < MIN_ATTEMPT_MS) {
        const message = `deadline reached before ${model.name} answered`;
        record(noAnswer(step, model.name, deployment, ErrorType.DeadlineExceeded, message), message);
        return { ok: false, type: ErrorType.DeadlineExceeded, message, refusedWindow };
      }
      await fx.checkpoint?.();
      calledAt ??= fx.now();
      const outcome = await fx.generate({
        step,
        model,
        deployment,
        params: callParams,
        requestId: `${workflowId}/${step}/${suffix}`,
        remainingMs,
        firstTokenTimeoutMs: firstTokenShareMs(model.firstTokenTimeoutMs, fx.now() - calledAt, !route.deployments.slice(i + 1).some(fits)),
        probe: route.probes?.includes(deployment.id) ?? false,
        purpose,
        ...delivery,
      });
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
              upstream_model: outcome.output.upstreamModel,
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
      // Too long for this deployment: another one of the model may have a larger window (or be
      // served with a larger limit); every other request error would fail the same way anywhere.
      if (error.type === ErrorType.ContextLengthExceeded) refusedWindow = Math.max(refusedWindow, deploymentWindow(model, deployment));
      else if (REQUEST_ERRORS.includes(error.type)) return { ok: false, ...error, refusedWindow };
    }
    const passedOn: string[] = [ErrorType.NoCapacity, ErrorType.CircuitOpen, ErrorType.ContextLengthExceeded];
    return { ok: false, type: passedOn.includes(last.type) ? last.type : ErrorType.AllDeploymentsFailed, message: last.message, refusedWindow };
  };

  const prerouted = policy.prerouter && fx.preroute ? await fx.preroute(policy.steps, params) : null;
  let contextFailedWindow = 0;

  /** Runs one step: feasibility, the call (with failover), evaluation. Records everything it does. */
  const runStep = async (i: number, hedged: boolean): Promise<StepOutcome> => {
    const stepSpec = policy.steps[i]!;
    const step = i + 1;
    const isLast = i === policy.steps.length - 1;
    const model = modelOf(stepSpec.model);
    const skip = (reason: string, detail: string): StepOutcome => {
      record(noAnswer(step, model.name, null, `skipped:${reason}`, detail), `step ${step} skipped: ${detail}`);
      return { kind: 'skipped', failure: { type: SKIP_ERRORS[reason] ?? ErrorType.AllDeploymentsFailed, message: detail } };
    };
    if (contextFailedWindow > 0 && !fitsAfterContextError(contextFailedWindow, model))
      return skip('context_length', `${model.name}'s context window (${modelWindow(model)}) is no larger than one that already refused the prompt`);
    const p = prerouted?.[i];
    if (!isLast && p !== undefined && policy.prerouter && p < policy.prerouter.skip_below)
      return skip('prerouter', `pre-router predicts ${p.toFixed(2)} < ${policy.prerouter.skip_below} for ${model.name}`);
    const needsEvaluation = !isLast || policy.evaluate_last_step;
    const routed = await fx.route(model);
    const route = { ...routed, deployments: preferPools(routed.deployments, stepSpec.pools) };
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
    if (!feasible.ok) return skip(feasible.reason, feasible.detail);

    // An answer nobody evaluates is the answer: it streams to the client as it is generated,
    // unless it runs as a hedge (it may still lose). Evaluated answers stream only as drafts.
    const stream: StreamKind | undefined = !input.stream ? undefined : !needsEvaluation && !hedged ? 'live' : input.stream.drafts ? 'draft' : undefined;
    const abortOptions = needsEvaluation ? earlyAbortOptions(stepSpec) : null;
    const answer = await callModel(step, model, withLogprobsIfNeeded(params, stepSpec.evaluator), 'answer', 'answer', route, {
      ...(stream && { stream }),
      ...(abortOptions && { earlyAbort: { evaluator: stepSpec.evaluator, threshold: stepSpec.threshold, options: abortOptions } }),
    });
    if (!answer.ok) {
      if (answer.type === ErrorType.ContentPolicyViolation) throw new CascadeFailure(answer.type, answer.message, trace);
      return { kind: 'failed', failure: answer, ...(answer.refusedWindow > 0 && { contextWindow: answer.refusedWindow }) };
    }
    const output = answer.output;
    const base: AttemptRecord = {
      step,
      model: model.name,
      pool: answer.deployment.pool,
      deployment: answer.deployment.id,
      latency_ms: output.latencyMs,
      confidence: null,
      accepted: true,
      error: null,
      cost_usd: costOfUsage(model, output.usage),
      retries: output.attempt - 1,
      upstream_model: output.upstreamModel,
    };
    if (output.stoppedFor) {
      // Streaming evaluation found the answer lost: what was generated is paid for, never returned.
      const saved = savedByEarlyStop(model, output);
      record(
        {
          ...base,
          confidence: 0,
          accepted: false,
          detail: `stopped early after ${output.usage.completion_tokens} tokens: ${output.stoppedFor}`,
          stopped_early: { reason: output.stoppedFor, tokens: output.usage.completion_tokens, saved_tokens_est: saved.tokens, saved_ms_est: saved.ms },
        },
        `step ${step} · ${model.name}: stopped early (${output.stoppedFor}), escalate`,
      );
      return { kind: 'rejected', candidate: null };
    }
    if (!needsEvaluation) {
      record({ ...base, detail: 'last step: accepted without evaluation' }, `step ${step} · ${model.name} on ${answer.deployment.pool}: accepted (last step)`);
      return { kind: 'accepted', candidate: { step, model, output, confidence: 1 } };
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
    const candidate = { step, model, output, confidence: evaluation.confidence };
    return ok ? { kind: 'accepted', candidate } : { kind: 'rejected', candidate };
  };

  let best: Candidate | null = null;
  let lastFailure: { type: string; message: string } | null = null;
  /** Folds a step's outcome into the running state; returns the answer when the step's was accepted. */
  const settle = (i: number, outcome: StepOutcome): Candidate | null => {
    if (outcome.kind === 'accepted') return outcome.candidate;
    const isLast = i === policy.steps.length - 1;
    if (outcome.kind === 'rejected') {
      const c = outcome.candidate;
      if (c && (!best || c.confidence > best.confidence)) best = c;
    } else {
      lastFailure = outcome.failure;
      if (outcome.kind === 'failed' && outcome.contextWindow) contextFailedWindow = Math.max(contextFailedWindow, outcome.contextWindow);
    }
    if (outcome.kind !== 'skipped' && !isLast) trace.escalations++;
    return null;
  };

  const expectedMs = (i: number) => modelOf(policy.steps[i]!.model).p50LatencyMs;
  for (let i = 0; i < policy.steps.length; i++) {
    const next = i + 1 < policy.steps.length ? i + 1 : null;
    const hedge = policy.steps[i]!.hedge;
    const why =
      next === null ? null : hedgeReason({ hedge, pAccept: prerouted?.[i], remainingMs: deadline - fx.now(), thisMs: expectedMs(i), nextMs: expectedMs(next) });
    const delayMs = next !== null && why === null && hedge?.after_ms !== undefined && fx.sleep ? hedge.after_ms : null;
    if (next === null || (why === null && delayMs === null)) {
      const accepted = settle(i, await runStep(i, false));
      if (accepted) return finish(trace, accepted.step, accepted.model, accepted.output, input.requestHash);
      continue;
    }
    // Hedge: the next step starts now (or once this one has run `after_ms`). The first acceptable
    // answer wins; the other call is cancelled, and what it probably cost stays in the trace.
    const race = await raceSteps({
      pair: [i, next],
      delayMs: delayMs ?? 0,
      run: (j) => runStep(j, j === next),
      settle,
      fx,
      onHedge: () => {
        const reason = why ?? `step ${i + 1} not accepted after ${delayMs} ms`;
        (trace.hedges ??= []).push({ step: next + 1, reason });
        fx.onProgress?.(trace, `step ${next + 1} hedged alongside step ${i + 1}: ${reason}`);
      },
      onCancelled: (j) => {
        const model = modelOf(policy.steps[j]!.model);
        record(
          {
            ...noAnswer(
              j + 1,
              model.name,
              null,
              'cancelled',
              'hedge lost: cancelled once the other step answered (cost: upper estimate, a whole typical answer)',
            ),
            cost_usd: cancelledCallCost(model, promptTokens, params.max_tokens),
          },
          `step ${j + 1} cancelled: the hedge was won by the other step`,
        );
      },
    });
    if (race.winner) return finish(trace, race.winner.step, race.winner.model, race.winner.output, input.requestHash);
    if (race.hedged) i = next; // both steps are settled
  }

  const failure: { type: string; message: string } = lastFailure ?? { type: ErrorType.AllDeploymentsFailed, message: 'no step produced an answer' };
  const fallback = best as Candidate | null;
  if (fallback) {
    // Better a rejected answer, clearly flagged, than none when every stronger step failed.
    trace.degraded = true;
    fx.onProgress?.(trace, `no answer accepted (${failure.type}); returning the best rejected answer from step ${fallback.step}`);
    return finish(trace, fallback.step, fallback.model, fallback.output, input.requestHash);
  }
  throw new CascadeFailure(failure.type, failure.message, trace);
}

const SKIP_ERRORS: Record<string, string> = {
  context_length: ErrorType.ContextLengthExceeded,
  deadline: ErrorType.DeadlineExceeded,
  budget: ErrorType.BudgetExceeded,
};

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
  trace.registry_model = model.name;
  return {
    requestHash,
    content: output.content,
    finishReason: output.finishReason,
    // What actually answered: a fallback deployment may serve another upstream model.
    model: output.upstreamModel || model.name,
    usage: output.usage,
    logprobs: output.logprobs,
    cascade: trace,
  };
}
