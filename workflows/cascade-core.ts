/**
 * The cascade itself, written once against a small set of effects so that the Temporal workflow
 * (effects = activities) and the offline routing benchmark (effects = recorded answers) run the
 * same decisions. Deterministic: no I/O, no clocks or randomness except through `effects`.
 * The effects are declared in cascade-effects.ts, one model call (with failover) is call-model.ts.
 */
import type { AttemptRecord, CascadeInput, CascadeResult, CascadeTrace, ModelInfo } from '../common/types.js';
import type { StreamKind } from '../common/stream.js';
import { ErrorType } from '../common/errors.js';
import {
  accepts,
  cancelledCallCost,
  costOfUsage,
  earlyAbortOptions,
  estimatePromptTokens,
  expectedBacklogMs,
  fitsAfterContextError,
  hedgeReason,
  modelWindow,
  preferPools,
  roundUsd,
  savedByEarlyStop,
  stepFeasibility,
} from './policy.js';
import { extraCallsOf, gatherEvidence, withLogprobsIfNeeded } from './evidence.js';
import { raceSteps, type Candidate, type StepOutcome } from './hedge.js';
import { CascadeFailure, type CascadeEffects } from './cascade-effects.js';
import { makeCallModel } from './call-model.js';
import { ownUsage } from './continuation.js';
import { finish, noAnswer, SKIP_ERRORS } from './trace.js';
import { decisionFor, isProbe, learnQueryOf, prerouterClass, unprofitableDetail } from './learn.js';

export * from './cascade-effects.js';

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

  const callModel = makeCallModel({ fx, workflowId, deadline, record });

  /** Whether step i's answer is evaluated (every step but the last, unless the policy says so). */
  const evaluated = (i: number) => i < policy.steps.length - 1 || policy.evaluate_last_step;
  const prerouted = policy.prerouter && fx.preroute ? await fx.preroute(policy.steps, params) : null;
  if (prerouted) trace.prerouter = prerouted.map((p) => Math.round(p * 1000) / 1000);
  let contextFailedWindow = 0;
  // Learning from traffic (learn.ts): the router worker answers from its cached copy of the policy's stats.
  const learn = policy.learn && policy.steps.length > 1 ? policy.learn : null;

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
    const needsEvaluation = evaluated(i);
    const routed = await fx.route(model, learnQueryOf(policy, step));
    const learned = learn && routed.learned ? decisionFor(routed.learned, step, prerouterClass(p), learn.min_samples) : null;
    if (learn && learned?.skip) {
      if (!isProbe(workflowId, step, learn.probe_every)) return skip('unprofitable', unprofitableDetail(model.name, learned));
      (trace.probes ??= []).push(step);
    }
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
      backlogMs: expectedBacklogMs(route.deployments, route.backlogMs),
    });
    if (!feasible.ok) return skip(feasible.reason, feasible.detail);

    // An answer nobody evaluates is the answer: it streams to the client as it is generated; as a
    // hedge (it may still lose) it is held by the API until the other step loses. Evaluated
    // answers stream only as drafts.
    const stream: StreamKind | undefined = !input.stream
      ? undefined
      : !needsEvaluation
        ? hedged
          ? 'hedge'
          : 'live'
        : input.stream.drafts
          ? 'draft'
          : undefined;
    const abortOptions = needsEvaluation ? earlyAbortOptions(stepSpec) : null;
    const answer = await callModel(step, model, withLogprobsIfNeeded(params, stepSpec.evaluator), 'answer', 'answer', route, {
      ...(stream && { stream }),
      ...(abortOptions && { earlyAbort: { evaluator: stepSpec.evaluator, threshold: stepSpec.threshold, options: abortOptions } }),
      ...(needsEvaluation && extraCallsOf(stepSpec.evaluator) === 0 && { evaluate: { spec: stepSpec.evaluator, threshold: stepSpec.threshold } }),
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
      // A continuation's earlier part is billed with the call that broke.
      cost_usd: costOfUsage(model, ownUsage(output)),
      retries: output.attempt - 1,
      upstream_model: output.upstreamModel,
      ...(output.continued && { continued_from: { deployment: output.continued.deployment, chars: output.continued.chars } }),
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
      // The other step lost while the hedge still runs: its held text goes out now, the rest live.
      onLastStanding: async (j) => {
        if (j === next && input.stream && !evaluated(next)) await fx.promote?.(j + 1);
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
