/**
 * Activities served on every pool's task queue: the same `generate` everywhere, bound at worker
 * start to the deployments of that pool. Keys are read from the worker's own environment, so
 * they never travel through Temporal. The router worker binds the same `generate` to the pools
 * whose dispatch is `local` and runs it as a local activity, each pool limited by its PoolSlots.
 */
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import type { GenerateInput, GenerateOutput } from '../common/types.js';
import { ErrorType, NON_RETRYABLE_ERRORS } from '../common/errors.js';
import type { CascadeConfig } from '../config/load.js';
import type { ChatProvider, UpstreamEndpoint } from './providers/interface.js';
import { UpstreamFailure } from './providers/interface.js';
import { OpenAICompatibleProvider } from './providers/openai-compatible.js';
import { createPrefixJudge } from '../evaluators/prefix.js';
import { openStreamSink, type StreamSink } from './stream-sink.js';
import { PoolSlots } from './pool-slots.js';
import type { CallEvaluator } from './call-evaluator.js';
import type { Evaluation } from '../evaluators/types.js';

export interface PoolActivityDeps {
  config: CascadeConfig;
  /** The pools whose deployments this process calls. */
  pools: string[];
  /** Local dispatch: admit at most the pool's `concurrency` calls at once in this process. */
  limitConcurrency?: boolean;
  logger: Logger;
  provider?: ChatProvider;
  env?: NodeJS.ProcessEnv;
  /** Evaluates answers the workflow asks to be evaluated with the call (activities/call-evaluator.ts). */
  evaluate?: CallEvaluator;
}

export function createPoolActivities({
  config,
  pools,
  limitConcurrency,
  logger,
  provider = new OpenAICompatibleProvider(),
  env = process.env,
  evaluate,
}: PoolActivityDeps) {
  const endpoints = new Map<string, UpstreamEndpoint & { pool: string }>();
  const slots = new Map(limitConcurrency ? pools.map((p) => [p, new PoolSlots(config.raw.pools[p]?.concurrency ?? 1)]) : []);
  /** Deployment → the unset key variable, warned about at its first call (not for deployments never called). */
  const missingKeys = new Map<string, string>();
  for (const [id, d] of config.deployments) {
    if (!pools.includes(d.ref.pool)) continue;
    endpoints.set(id, {
      id,
      pool: d.ref.pool,
      baseUrl: d.baseUrl,
      apiKey: d.apiKeyEnv ? (env[d.apiKeyEnv] ?? null) : null,
      upstreamModel: d.upstreamModel,
      stream: d.stream,
      headers: d.headers,
      continuation: d.continuation,
    });
    if (d.apiKeyEnv && !env[d.apiKeyEnv]) missingKeys.set(id, d.apiKeyEnv);
  }

  return {
    async generate(input: GenerateInput): Promise<GenerateOutput> {
      const ctx = Context.current();
      const { attempt } = ctx.info;
      const endpoint = endpoints.get(input.deploymentId);
      if (!endpoint) {
        throw ApplicationFailure.create({
          type: ErrorType.ConfigurationError,
          nonRetryable: true,
          message: `pools ${pools.join(', ')} do not serve deployment ${input.deploymentId}`,
          details: [{ attempt }],
        });
      }
      const { pool } = endpoint;
      const release = await admit(pool, ctx, attempt);
      // The pool's backlog as this call met it: on the task queue, then for a local slot. Only a
      // first attempt's: a retry's schedule time may include its backoff (or a Retry-After).
      const queuedMs = attempt === 1 ? Math.max(0, Date.now() - ctx.info.currentAttemptScheduledTimestampMs) : undefined;
      try {
        return { ...(await call(input, endpoint, ctx, attempt)), ...(queuedMs !== undefined && { queuedMs }) };
      } finally {
        release();
      }
    },
  };

  /** Local dispatch: wait for one of the pool's slots in this process, as a pool worker's task queue would. */
  async function admit(pool: string, ctx: Context, attempt: number): Promise<() => void> {
    const limit = slots.get(pool);
    if (!limit) return () => {};
    const waitMs = config.raw.retry.schedule_to_start_timeout_ms;
    const release = await limit.acquire(waitMs, ctx.cancellationSignal);
    if (release) return release;
    throw ApplicationFailure.create({
      type: ErrorType.NoCapacity,
      nonRetryable: true,
      message: `all ${limit.size} slots of pool ${pool} stayed busy for ${waitMs} ms`,
      details: [{ attempt }],
    });
  }

  async function call(input: GenerateInput, endpoint: UpstreamEndpoint & { pool: string }, ctx: Context, attempt: number): Promise<GenerateOutput> {
    {
      const { pool } = endpoint;
      const model = config.models.get(input.model);
      const workflowId = ctx.info.workflowExecution?.workflowId ?? '';
      const log = logger.child({ workflow_id: workflowId, deployment: input.deploymentId, attempt });
      const missingKey = missingKeys.get(input.deploymentId);
      if (missingKey && missingKeys.delete(input.deploymentId))
        log.warn({ env: missingKey }, 'API key environment variable is not set; calls to this deployment are sent without a key');
      const sink: StreamSink | null = input.stream
        ? openStreamSink(
            input.stream.target,
            {
              workflowId,
              call: input.requestId,
              step: input.stream.step,
              model: input.model,
              kind: input.stream.kind,
              attempt,
              ...(input.continueFrom && { prefix: input.continueFrom }),
            },
            ctx.info.isLocal,
          )
        : null;
      const judge = input.earlyAbort
        ? createPrefixJudge(
            input.earlyAbort.evaluator,
            input.earlyAbort.threshold,
            { messages: input.params.messages, responseFormat: input.params.response_format },
            input.earlyAbort.options,
          )
        : null;
      try {
        const result = await provider.chat({
          endpoint,
          params: input.params,
          headers: { ...input.forwardHeaders, 'x-request-id': input.requestId },
          firstTokenTimeoutMs: input.firstTokenTimeoutMs,
          streamIdleTimeoutMs: input.streamIdleTimeoutMs,
          attemptTimeoutMs: model?.attemptTimeoutMs ?? 120_000,
          signal: ctx.cancellationSignal,
          ...(input.continueFrom && { continueFrom: input.continueFrom }),
          // Local activities cannot heartbeat: their liveness is the workflow task's.
          ...(!ctx.info.isLocal && { heartbeat: () => ctx.heartbeat() }),
          ...((sink || judge) && {
            onDelta: (text, logprobs) => {
              sink?.delta(text);
              return judge?.push(text, logprobs ?? undefined) ?? null;
            },
          }),
        });
        sink?.end(result.stoppedFor ? 'aborted' : 'ok', result.stoppedFor);
        log.info(
          {
            latency_ms: result.latencyMs,
            first_token_ms: result.firstTokenMs,
            completion_tokens: result.usage.completion_tokens,
            ...(result.stoppedFor && { stopped_for: result.stoppedFor }),
          },
          result.stoppedFor ? 'model call stopped early: the answer was already lost' : 'model call completed',
        );
        const output: GenerateOutput = { ...result, attempt, pool };
        const evaluation = input.evaluate && evaluate && !result.stoppedFor ? await evaluateQuietly(input, output, log) : null;
        return evaluation ? { ...output, evaluation } : output;
      } catch (err) {
        if (ctx.cancellationSignal.aborted) {
          // The workflow no longer wants this call (a hedge lost, the caller left): the upstream
          // request was aborted with it.
          sink?.end('cancelled');
          log.info('model call cancelled');
          throw new CancelledFailure('model call cancelled by the workflow');
        }
        const failure = err instanceof UpstreamFailure ? err : new UpstreamFailure(ErrorType.UpstreamError, (err as Error).message, { retryable: true });
        sink?.end('failed', failure.type);
        log.warn({ error: failure.type, retryable: failure.retryable }, 'model call failed');
        const remainingMs = ctx.info.scheduleToCloseTimeoutMs ? ctx.info.scheduledTimestampMs + ctx.info.scheduleToCloseTimeoutMs - Date.now() : Infinity;
        // A Retry-After longer than the time left is not worth waiting for: fail over at once.
        const waitTooLong = failure.retryAfterMs !== null && failure.retryAfterMs >= remainingMs;
        // Text a client has already seen (or will, a hedge once it wins): another deployment may continue it.
        const partial = input.stream?.kind === 'live' || input.stream?.kind === 'hedge' ? failure.partial : null;
        throw ApplicationFailure.create({
          type: failure.type,
          message: failure.message,
          nonRetryable: !failure.retryable || waitTooLong || NON_RETRYABLE_ERRORS.includes(failure.type),
          nextRetryDelay: failure.retryAfterMs ?? undefined,
          details: [{ attempt, ...(partial && { partial }) }],
        });
      }
    }
  }

  /** The answer's evaluation; null when this process does not evaluate with that evaluator, or fails to: the call succeeded and is not made again for it. */
  async function evaluateQuietly(input: GenerateInput, answer: GenerateOutput, log: Logger): Promise<Evaluation | null> {
    const { step, spec, threshold } = input.evaluate!;
    try {
      return await evaluate!({ step, spec, threshold, params: input.params, answer, model: input.model });
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'evaluation with the call failed; the workflow evaluates it');
      return null;
    }
  }
}

export type PoolActivities = ReturnType<typeof createPoolActivities>;
