/**
 * The cascade as a Temporal workflow: every model call is an activity on the task queue of the
 * pool that serves it, evaluation and routing state are local activities on the router worker.
 * The decisions themselves live in cascade-core.ts.
 */
import { ActivityFailure, ApplicationFailure, TimeoutFailure, TimeoutType } from '@temporalio/common';
import {
  CancellationScope,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  proxySinks,
  sleep,
  setCurrentDetails,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { PoolActivities } from '../activities/pool.js';
import type { RouterActivities, RouterSinks } from '../activities/router.js';
import type { CascadeInput, CascadeResult, CascadeTrace, GenerateInput } from '../common/types.js';
import { ErrorType } from '../common/errors.js';
import type { PartialAnswer } from '../common/continuation.js';
import { SearchAttr } from '../common/names.js';
import { CascadeFailure, runCascade, type CascadeEffects, type GenerateOutcome } from './cascade-core.js';
import { attemptTimeouts, cancelledCallCost, costOfUsage, estimatePromptTokens, roundUsd } from './policy.js';
import { encodeSummary, ladderHash, prerouterClass, summarize } from './learn.js';
import { settleSignal } from '../common/budget-messages.js';

const pool = proxyActivities<PoolActivities>({ startToCloseTimeout: '60s' });
/** Pools with `dispatch: local`: the same activity, run by the router worker (config/schema.ts). */
const localPool = proxyLocalActivities<PoolActivities>({ startToCloseTimeout: '60s' });
const router = proxyLocalActivities<RouterActivities>({
  startToCloseTimeout: '10s',
  retry: { maximumAttempts: 3, initialInterval: '50ms' },
});
/**
 * Call outcomes for the router worker's circuit breakers and latency figures: a sink, so they cost
 * no local-activity round trip and no history event. They are advisory, in-memory state of the
 * worker running the workflow; a replay does not send them again.
 */
const { health } = proxySinks<RouterSinks>();

export async function cascadeWorkflow(input: CascadeInput): Promise<CascadeResult> {
  const { workflowId } = workflowInfo();
  // A local-dispatch call's result is only in history once the workflow task that ran it ends.
  // Before the next model call starts, end it (a 1 ms timer): a router worker that dies later
  // then never makes a finished call again; only the call in flight is repeated.
  let unrecordedLocalCall = false;
  let firstRoute = input.firstRoute;
  // What the key's budget is settled with: tokens of every finished call, the latest trace, and
  // what calls cut off by a cancellation of the whole request may have cost (an upper bound).
  const spend = { tokens: 0, trace: null as CascadeTrace | null, cutOffUsd: 0 };
  let requestCancelled = false;
  CancellationScope.current().cancelRequested.catch(() => (requestCancelled = true));
  const effects: CascadeEffects = {
    now: () => Date.now(),
    route: async (model, learn) => {
      // The decision made at the start, if any, serves only the first call, and only for its model.
      const known = firstRoute?.model === model.name ? firstRoute.route : null;
      firstRoute = undefined;
      return known ?? (await router.route({ model: model.name, deployments: model.deployments, ...(learn && { learn }) }));
    },
    report: async (report) => health.record(report),
    evaluate: async (call) =>
      // Evaluated by the call itself: the same evaluator on the same answer.
      call.answer.evaluation && !call.samples && call.judgeVerdict === undefined
        ? call.answer.evaluation
        : router.evaluate.executeWithOptions(
            { startToCloseTimeout: '10s', summary: `evaluate step ${call.step} · ${call.spec.type} (threshold ${call.threshold})` },
            [call],
          ),
    preroute: (steps, params) => router.preroute({ policy: input.policy.name, prerouter: input.policy.prerouter!, steps, messages: params.messages }),
    generate: async (call): Promise<GenerateOutcome> => {
      const t = attemptTimeouts(call.model, input.retry, call.remainingMs);
      const startedAt = Date.now();
      try {
        const args: [GenerateInput] = [
          {
            deploymentId: call.deployment.id,
            model: call.model.name,
            params: call.params,
            requestId: call.requestId,
            forwardHeaders: input.forwardHeaders,
            firstTokenTimeoutMs: call.firstTokenTimeoutMs,
            streamIdleTimeoutMs: call.model.streamIdleTimeoutMs,
            label: `step ${call.step} · ${call.model.name} on ${call.deployment.pool}`,
            ...(call.stream && input.stream && { stream: { target: input.stream, kind: call.stream, step: call.step } }),
            ...(call.earlyAbort && { earlyAbort: call.earlyAbort }),
            // Evaluated with the call where the worker can (a pool worker loads no model files).
            ...(call.evaluate && { evaluate: { step: call.step, ...call.evaluate } }),
            ...(call.continueFrom && { continueFrom: call.continueFrom }),
          },
        ];
        const retry = {
          initialInterval: input.retry.initialIntervalMs,
          backoffCoefficient: input.retry.backoffCoefficient,
          maximumInterval: input.retry.maximumIntervalMs,
          // A probe of an open circuit asks once: a still-broken deployment costs one attempt, not a ladder.
          maximumAttempts: call.probe ? 1 : input.retry.maximumAttempts,
        };
        const summary = `step ${call.step} · ${call.model.name} on ${call.deployment.pool}${call.purpose === 'answer' ? '' : ` (${call.purpose})`}${call.probe ? ' (probe)' : ''}`;
        const output =
          call.deployment.dispatch === 'local'
            ? // In the router worker itself: no task queue, no pool worker, no extra workflow task.
              await localPool.generate.executeWithOptions(
                { startToCloseTimeout: t.startToCloseTimeoutMs, scheduleToCloseTimeout: t.scheduleToCloseTimeoutMs, retry, summary },
                args,
              )
            : await pool.generate.executeWithOptions(
                {
                  taskQueue: call.deployment.taskQueue,
                  scheduleToStartTimeout: t.scheduleToStartTimeoutMs,
                  startToCloseTimeout: t.startToCloseTimeoutMs,
                  heartbeatTimeout: t.heartbeatTimeoutMs,
                  scheduleToCloseTimeout: t.scheduleToCloseTimeoutMs,
                  retry,
                  summary,
                },
                args,
              );
        // Only finished calls need recording first: one still running (a hedge) must not be waited for.
        if (call.deployment.dispatch === 'local') unrecordedLocalCall = true;
        spend.tokens += output.usage.total_tokens;
        return { ok: true, output };
      } catch (err) {
        // A hedge's loser is cancelled too, but cascade-core charges it itself; only a cancelled request's calls are charged here.
        if (isCancellation(err) && requestCancelled)
          spend.cutOffUsd = roundUsd(spend.cutOffUsd + cancelledCallCost(call.model, estimatePromptTokens(call.params), call.params.max_tokens));
        return { ok: false, error: { ...classifyActivityFailure(err), latencyMs: Date.now() - startedAt } };
      }
    },
    onProgress: (trace, note) => {
      spend.trace = trace;
      showProgress(trace, note);
    },
    cancellable: (fn) => {
      const scope = new CancellationScope();
      return { promise: scope.run(fn), cancel: () => scope.cancel() };
    },
    sleep: (ms) => sleep(ms),
    promote: async (step) => {
      if (input.stream) await router.promote({ target: input.stream, step });
    },
    checkpoint: async () => {
      if (!unrecordedLocalCall) return;
      unrecordedLocalCall = false;
      await sleep(1);
    },
  };

  try {
    const result = await runCascade(input, workflowId, effects);
    publish(input, withCaller(result.cascade, input), result);
    await settleBudget(input, result.cascade.cost_usd, spend.tokens);
    return result;
  } catch (err) {
    if (err instanceof CascadeFailure) {
      publish(input, withCaller(err.trace, input), null);
      await settleBudget(input, err.trace.cost_usd, spend.tokens);
      throw ApplicationFailure.create({ type: err.type, message: err.message, nonRetryable: true, details: [err.trace] });
    }
    if (isCancellation(err)) {
      // The caller went away: what was billed so far still counts, in the ledger (the cost search
      // attribute: a cancelled workflow has no result) and in the key's budget.
      const cost = roundUsd((spend.trace?.cost_usd ?? 0) + spend.cutOffUsd);
      await CancellationScope.nonCancellable(async () => {
        publish(input, { ...(spend.trace ?? emptyTrace(workflowId, input)), cost_usd: cost }, null);
        await settleBudget(input, cost, spend.tokens);
      });
    }
    throw err;
  }
}

/** The caller's key and tier, in the trace the response, the ledger and the UI show. */
function withCaller(trace: CascadeTrace, input: CascadeInput): CascadeTrace {
  if (input.caller) Object.assign(trace, { key_id: input.caller.keyId, tier: input.caller.tier });
  return trace;
}

const emptyTrace = (workflowId: string, input: CascadeInput): CascadeTrace => ({
  workflow_id: workflowId,
  policy: input.policy.name,
  final_step: null,
  escalations: 0,
  cost_usd: 0,
  attempts: [],
});

/**
 * Replaces the request's reservation in its key's budget workflow by what it really cost. Sent
 * by the cascade itself, so a dead API process leaks nothing; a key workflow that is gone must
 * not fail the request.
 */
async function settleBudget(input: CascadeInput, usd: number, tokens: number): Promise<void> {
  if (!input.budget) return;
  try {
    await getExternalWorkflowHandle(input.budget.keyWorkflowId).signal(settleSignal, { id: workflowInfo().workflowId, usd, tokens });
  } catch {
    // The key workflow's reservation then expires and is checked against this workflow's cost attribute.
  }
}

/** Maps what Temporal reports about a failed activity to the shared error names. */
function classifyActivityFailure(err: unknown): { type: string; message: string; retries: number; partial?: PartialAnswer } {
  // A cancelled request (the caller went away) stops here instead of failing over.
  if (isCancellation(err)) throw err;
  // A task-queue activity's failure wraps its cause; a local activity's arrives as the cause itself.
  const cause = err instanceof ActivityFailure ? err.cause : err instanceof ApplicationFailure || err instanceof TimeoutFailure ? err : null;
  if (!cause) throw err;
  if (cause instanceof ApplicationFailure) {
    const details = cause.details?.[0] as { attempt?: number; partial?: PartialAnswer } | undefined;
    const attempts = details?.attempt ?? 1;
    return {
      type: cause.type ?? ErrorType.UpstreamError,
      message: cause.message,
      retries: attempts - 1,
      ...(details?.partial && { partial: details.partial }),
    };
  }
  if (cause instanceof TimeoutFailure) {
    switch (cause.timeoutType) {
      case TimeoutType.SCHEDULE_TO_START:
        return { type: ErrorType.NoCapacity, message: 'no worker of the pool took the call in time', retries: 0 };
      case TimeoutType.SCHEDULE_TO_CLOSE:
        return { type: ErrorType.DeadlineExceeded, message: 'the call did not finish before the request deadline', retries: 0 };
      default: {
        // Heartbeat or start-to-close: the worker died or the upstream never answered.
        const inner = cause.cause instanceof ApplicationFailure ? cause.cause : null;
        return { type: inner?.type ?? ErrorType.UpstreamTimeout, message: inner?.message ?? `attempt timed out (${cause.timeoutType})`, retries: 0 };
      }
    }
  }
  return { type: ErrorType.UpstreamError, message: cause.message, retries: 0 };
}

/** Human trace of the decisions so far, shown as the workflow's current details in the Temporal UI. */
function showProgress(trace: CascadeTrace, note: string): void {
  const lines = trace.attempts.map((a) => {
    const where = a.pool ? `${a.model} on ${a.pool}` : a.model;
    const what = a.error
      ? a.error
      : a.confidence !== null
        ? `confidence ${a.confidence.toFixed(2)} → ${a.accepted ? 'accepted' : 'rejected'}`
        : a.accepted
          ? 'accepted'
          : (a.detail ?? '');
    return `- step ${a.step} · ${where}: ${what} (\\$${a.cost_usd.toFixed(6)})`;
  });
  setCurrentDetails([`**${note}**`, ...lines].join('\n'));
}

/** The trace's figures as search attributes, in the workflow's last task (no extra round trip). */
function publish(input: CascadeInput, trace: CascadeTrace, result: CascadeResult | null): void {
  const finalModel = result ? (trace.registry_model ?? null) : null;
  upsertSearchAttributes([
    ...learnAttribute(input, trace, result),
    { key: SearchAttr.FinalStep, value: trace.final_step ?? 0 },
    { key: SearchAttr.Escalations, value: trace.escalations },
    { key: SearchAttr.CostUsd, value: trace.cost_usd },
    ...(finalModel ? [{ key: SearchAttr.FinalModel, value: finalModel }] : []),
  ]);
}

/** The request's outcome per step, which the policy's stats entity collects (learn-workflow.ts). */
function learnAttribute(input: CascadeInput, trace: CascadeTrace, result: CascadeResult | null) {
  const { policy, models } = input;
  if (!policy.learn || policy.steps.length < 2) return [];
  const top = models[policy.steps.at(-1)!.model];
  const topCost = result && top ? costOfUsage(top, result.usage) : null;
  const classes = policy.steps.map((_, i) => prerouterClass(trace.prerouter?.[i]));
  return [{ key: SearchAttr.Learn, value: encodeSummary(summarize(trace, ladderHash(policy.steps), classes, topCost)) }];
}
