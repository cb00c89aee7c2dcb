/**
 * Activities served on every pool's task queue: the same `generate` everywhere, bound at worker
 * start to the deployments of that pool. Keys are read from the worker's own environment, so
 * they never travel through Temporal.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import type { GenerateInput, GenerateOutput } from '../common/types.js';
import { ErrorType, NON_RETRYABLE_ERRORS } from '../common/errors.js';
import type { CascadeConfig } from '../config/load.js';
import type { ChatProvider, UpstreamEndpoint } from './providers/interface.js';
import { UpstreamFailure } from './providers/interface.js';
import { OpenAICompatibleProvider } from './providers/openai-compatible.js';

export interface PoolActivityDeps {
  config: CascadeConfig;
  pool: string;
  logger: Logger;
  provider?: ChatProvider;
  env?: NodeJS.ProcessEnv;
}

export function createPoolActivities({ config, pool, logger, provider = new OpenAICompatibleProvider(), env = process.env }: PoolActivityDeps) {
  const endpoints = new Map<string, UpstreamEndpoint>();
  for (const [id, d] of config.deployments) {
    if (d.ref.pool !== pool) continue;
    endpoints.set(id, {
      id,
      baseUrl: d.baseUrl,
      apiKey: d.apiKeyEnv ? (env[d.apiKeyEnv] ?? null) : null,
      upstreamModel: d.upstreamModel,
      stream: d.stream,
      headers: d.headers,
    });
    if (d.apiKeyEnv && !env[d.apiKeyEnv])
      logger.warn({ deployment: id, env: d.apiKeyEnv }, 'API key environment variable is not set; calls will be sent without a key');
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
          message: `pool ${pool} does not serve deployment ${input.deploymentId}`,
          details: [{ attempt }],
        });
      }
      const model = config.models.get(input.model);
      const log = logger.child({ workflow_id: ctx.info.workflowExecution?.workflowId, deployment: input.deploymentId, attempt });
      try {
        const result = await provider.chat({
          endpoint,
          params: input.params,
          headers: { ...input.forwardHeaders, 'x-request-id': input.requestId },
          firstTokenTimeoutMs: input.firstTokenTimeoutMs,
          streamIdleTimeoutMs: input.streamIdleTimeoutMs,
          attemptTimeoutMs: model?.attemptTimeoutMs ?? 120_000,
          signal: ctx.cancellationSignal,
          heartbeat: () => ctx.heartbeat(),
        });
        log.info(
          { latency_ms: result.latencyMs, first_token_ms: result.firstTokenMs, completion_tokens: result.usage.completion_tokens },
          'model call completed',
        );
        return { ...result, attempt, pool };
      } catch (err) {
        const failure = err instanceof UpstreamFailure ? err : new UpstreamFailure(ErrorType.UpstreamError, (err as Error).message, { retryable: true });
        log.warn({ error: failure.type, retryable: failure.retryable }, 'model call failed');
        const remainingMs = ctx.info.scheduleToCloseTimeoutMs ? ctx.info.scheduledTimestampMs + ctx.info.scheduleToCloseTimeoutMs - Date.now() : Infinity;
        // A Retry-After longer than the time left is not worth waiting for: fail over at once.
        const waitTooLong = failure.retryAfterMs !== null && failure.retryAfterMs >= remainingMs;
        throw ApplicationFailure.create({
          type: failure.type,
          message: failure.message,
          nonRetryable: !failure.retryable || waitTooLong || NON_RETRYABLE_ERRORS.includes(failure.type),
          nextRetryDelay: failure.retryAfterMs ?? undefined,
          details: [{ attempt }],
        });
      }
    },
  };
}

export type PoolActivities = ReturnType<typeof createPoolActivities>;
