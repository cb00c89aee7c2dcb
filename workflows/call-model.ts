/**
 * One model call as the cascade makes it: the deployments in the router's order, failover across
 * them (context windows, deadlines, first-token budget), and only completed calls billed.
 */
import type { AttemptRecord, DeploymentRef } from '../common/types.js';
import { ErrorType, REQUEST_ERRORS } from '../common/errors.js';
import type { CallModel, CascadeEffects } from './cascade-effects.js';
import { costOfUsage, deploymentFits, deploymentWindow, firstTokenShareMs, MIN_ATTEMPT_MS, tokensNeeded } from './policy.js';
import { noAnswer } from './trace.js';
import { joinContinuation, preferContinuing, textSent, type SentText } from './continuation.js';

export interface CallContext {
  fx: CascadeEffects;
  workflowId: string;
  deadline: number;
  /** Appends an attempt to the trace (and bills it). */
  record(a: AttemptRecord, note: string): void;
}

/** Calls one model, failing over across its deployments; bills only completed calls. */
export function makeCallModel({ fx, workflowId, deadline, record }: CallContext): CallModel {
  return async (step, model, callParams, purpose, suffix, knownRoute, delivery) => {
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
    let queue = [...route.deployments];
    /** Live text of calls that broke mid-answer: the client has it, the next deployment may continue it. */
    let sent: SentText | null = null;
    for (let deployment = queue.shift(); deployment; deployment = queue.shift()) {
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
      const continuing: SentText | null = sent && deployment.continuation ? sent : null;
      const outcome = await fx.generate({
        step,
        model,
        deployment,
        params: callParams,
        requestId: `${workflowId}/${step}/${suffix}`,
        remainingMs,
        firstTokenTimeoutMs: firstTokenShareMs(model.firstTokenTimeoutMs, fx.now() - calledAt, !queue.some(fits)),
        probe: route.probes?.includes(deployment.id) ?? false,
        purpose,
        ...delivery,
        ...(continuing && { continueFrom: continuing.text }),
      });
      if (outcome.ok) {
        const cost = costOfUsage(model, outcome.output.usage);
        await fx.report({
          deploymentId: deployment.id,
          model: model.name,
          ok: true,
          latencyMs: outcome.output.latencyMs,
          pool: deployment.pool,
          queuedMs: outcome.output.queuedMs ?? null,
        });
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
        return { ok: true, output: continuing ? joinContinuation(continuing, outcome.output) : outcome.output, deployment };
      }
      const { error } = outcome;
      await fx.report({
        deploymentId: deployment.id,
        model: model.name,
        ok: false,
        errorType: error.type,
        latencyMs: error.latencyMs,
        // No worker slot freed up in time: the whole wait was backlog.
        ...(error.type === ErrorType.NoCapacity && { pool: deployment.pool, queuedMs: error.latencyMs }),
      });
      const broke: SentText | null = error.partial ? textSent(continuing, error.partial, deployment.id) : null;
      record(
        {
          ...noAnswer(step, model.name, deployment, error.type, error.message, { latency_ms: error.latencyMs, retries: error.retries }),
          // The tokens it streamed were generated (and billed upstream) even though the call failed.
          ...(error.partial && {
            cost_usd: costOfUsage(model, error.partial.usage),
            detail: `${error.message} (after ${error.partial.text.length} characters streamed)`,
          }),
        },
        `step ${step} · ${model.name} on ${deployment.pool} failed: ${error.type}`,
      );
      last = error;
      if (broke) {
        sent = broke;
        queue = preferContinuing(queue);
      }
      // Too long for this deployment: another one of the model may have a larger window (or be
      // served with a larger limit); every other request error would fail the same way anywhere.
      if (error.type === ErrorType.ContextLengthExceeded) refusedWindow = Math.max(refusedWindow, deploymentWindow(model, deployment));
      else if (REQUEST_ERRORS.includes(error.type)) return { ok: false, ...error, refusedWindow };
    }
    const passedOn: string[] = [ErrorType.NoCapacity, ErrorType.CircuitOpen, ErrorType.ContextLengthExceeded];
    return { ok: false, type: passedOn.includes(last.type) ? last.type : ErrorType.AllDeploymentsFailed, message: last.message, refusedWindow };
  };
}
