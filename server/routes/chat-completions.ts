/**
 * POST /v1/chat/completions — OpenAI wire format in and out. Each request becomes a cascade
 * workflow; this handler only validates, starts (or re-attaches to) the workflow and renders its
 * result. An Idempotency-Key names the workflow, so a retried request returns the same answer
 * without calling any model again, also after this process restarted.
 */
import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { CascadeInput, CascadeResult, CascadeTrace, ChatMessage, ChatParams } from '../../common/types.js';
import { modelsForPolicy, type CascadeConfig } from '../../config/load.js';
import { ApiError, fromWorkflowError } from '../errors.js';
import { refusalBeforeStart } from '../../workflows/budget.js';
import { chatCompletionRequestSchema, type ChatCompletionRequest } from './chat-completions.schema.js';
import { idempotencyKeyOf, idempotentWorkflowId, keyReused, sha256 } from '../idempotency.js';
import { awaitResult, startOrAttach, type ChatStarter } from '../chat-workflow.js';
import type { StreamHub } from '../stream-hub.js';
import { respondStreaming } from './chat-stream.js';
import type { Budgets } from '../budgets.js';
import { callerKey } from '../auth.js';
import type { ChatLocals } from '../metrics.js';

export interface ChatRouteDeps {
  config: CascadeConfig;
  starter: ChatStarter;
  logger: Logger;
  hub: StreamHub;
  budgets: Budgets;
}

export function chatCompletionsRoute({ config, starter, logger, hub, budgets }: ChatRouteDeps): RequestHandler {
  const forwarded = config.raw.server.forward_headers.map((h) => h.toLowerCase());

  return async (req, res, next) => {
    const started = Date.now();
    const requestId = req.get('x-request-id')?.slice(0, 128) || randomUUID();
    res.setHeader('x-request-id', requestId);
    try {
      const body = parseBody(req.body);
      const key = callerKey(res.locals);
      const target = budgets.target(key, body.model);
      if (!target) throw ApiError.modelNotFound(body.model, config.policies.keys());
      const params = toChatParams(body);
      const requestHash = hashRequest(body);
      const idempotencyKey = idempotencyKeyOf(req);
      const workflowId = idempotencyKey ? idempotentWorkflowId('chat', idempotencyKey, key?.id) : `chat-${randomUUID()}`;
      const { policy } = target;
      const deadlineMs = Math.min(body.cascade?.deadline_ms ?? policy.deadline_ms, policy.deadline_ms);
      const input: CascadeInput = {
        requestId,
        requestHash,
        params,
        policy,
        models: modelsForPolicy(config, policy),
        retry: config.retry,
        forwardHeaders: pickHeaders(req.headers, forwarded),
        deadlineMs,
        maxCostUsd: Math.min(body.cascade?.max_cost_usd ?? policy.max_cost_usd, policy.max_cost_usd),
        ...(key && { caller: { keyId: key.id, tier: key.tier } }),
      };
      res.setHeader('x-cascade-workflow-id', workflowId);
      if (req.get('last-event-id') !== undefined && !idempotencyKey)
        throw ApiError.invalid(
          'Last-Event-ID resumes a stream: send it with the Idempotency-Key of the request it came from',
          'Last-Event-ID',
          'invalid_value',
        );
      // Refusals for the caller's own reasons are made here, before any workflow starts: a prompt
      // or cost cap no step fits (as the cascade would), then the key's budget and rate limit.
      const refused = refusalBeforeStart(input);
      if (refused) throw fromWorkflowError(refused.type, refused.message);
      input.budget = await budgets.reserve(key, workflowId, input);

      let result: CascadeResult;
      if (body.stream) {
        result = await respondStreaming({
          req,
          res,
          config,
          starter,
          hub,
          workflowId,
          input,
          deadlineMs,
          idempotencyKey,
          includeUsage: body.stream_options?.include_usage === true,
          logprobs: body.logprobs === true,
          drafts: body.cascade?.stream_drafts === true,
        });
      } else {
        const { handle, joined } = await startOrAttach(starter, workflowId, input, deadlineMs, res.locals.keyId as string | undefined);
        (res.locals as ChatLocals).cascadeJoined = joined;
        // A caller that gave up without an Idempotency-Key will never ask again: stop paying for it.
        const onClose = () => {
          if (!res.writableFinished && !idempotencyKey) handle.cancel().catch(() => {});
        };
        res.on('close', onClose);
        result = await awaitResult(handle);
        res.off('close', onClose);
        if (result.requestHash !== requestHash) throw keyReused();
        res.setHeader('x-cascade-cost-usd', result.cascade.cost_usd.toFixed(8));
        res.json(renderCompletion(result, workflowId, body.logprobs === true));
      }
      (res.locals as ChatLocals).cascadeResult = result; // for the metrics (server/metrics.ts)
      logger.info(
        {
          request_id: requestId,
          workflow_id: workflowId,
          policy: policy.name,
          model: result.model,
          final_step: result.cascade.final_step,
          escalations: result.cascade.escalations,
          cost_usd: result.cascade.cost_usd,
          ms: Date.now() - started,
        },
        'chat completion',
      );
    } catch (err) {
      logger.info(
        {
          request_id: requestId,
          status: err instanceof ApiError ? err.status : 500,
          code: err instanceof ApiError ? err.code : null,
          ms: Date.now() - started,
        },
        'chat completion failed',
      );
      if (!res.headersSent) next(err);
      else res.end();
    }
  };
}

function parseBody(raw: unknown): ChatCompletionRequest {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw ApiError.invalid('Request body must be a JSON object (send Content-Type: application/json)', null, 'invalid_body');
  const parsed = chatCompletionRequestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const param = issue.path.map(String).join('.') || null;
    throw ApiError.invalid(`Invalid request${param ? ` at '${param}'` : ''}: ${issue.message}`, param, 'invalid_value');
  }
  return parsed.data;
}

function toChatParams(body: ChatCompletionRequest): ChatParams {
  const messages: ChatMessage[] = body.messages.map((m) => ({
    role: m.role,
    content: m.content === null ? '' : typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
    ...(m.name && { name: m.name }),
  }));
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined;
  return {
    messages,
    ...(body.temperature != null && { temperature: body.temperature }),
    ...(body.top_p != null && { top_p: body.top_p }),
    ...(maxTokens != null && { max_tokens: maxTokens }),
    ...(body.stop != null && { stop: Array.isArray(body.stop) ? body.stop : [body.stop] }),
    ...(body.seed != null && { seed: body.seed }),
    ...(body.presence_penalty != null && { presence_penalty: body.presence_penalty }),
    ...(body.frequency_penalty != null && { frequency_penalty: body.frequency_penalty }),
    ...(body.response_format != null && { response_format: body.response_format as ChatParams['response_format'] }),
    ...(body.logprobs && { logprobs: true, ...(body.top_logprobs != null && { top_logprobs: body.top_logprobs }) }),
  };
}

/** Hash of what determines the answer (streaming and drafts are only how it is delivered). */
function hashRequest(body: ChatCompletionRequest): string {
  const { stream: _stream, stream_options: _options, cascade, ...rest } = body;
  const { stream_drafts: _drafts, ...limits } = cascade ?? {};
  return sha256(JSON.stringify(cascade ? { ...rest, cascade: limits } : rest));
}

function pickHeaders(headers: Record<string, string | string[] | undefined>, names: string[]): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const name of names) {
    const v = headers[name];
    if (typeof v === 'string') out[name] = v.slice(0, 1024);
  }
  return Object.keys(out).length ? out : undefined;
}

export interface RenderedCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  system_fingerprint: null;
  choices: {
    index: 0;
    message: { role: 'assistant'; content: string; refusal: null };
    logprobs: { content: CascadeResult['logprobs'] } | null;
    finish_reason: string;
  }[];
  usage: CascadeResult['usage'];
  cascade: CascadeTrace;
}

function renderCompletion(result: CascadeResult, workflowId: string, withLogprobs: boolean): RenderedCompletion {
  return {
    id: `chatcmpl-${workflowId}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: result.model,
    system_fingerprint: null,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: result.content, refusal: null },
        logprobs: withLogprobs ? { content: result.logprobs } : null,
        finish_reason: result.finishReason,
      },
    ],
    usage: result.usage,
    cascade: result.cascade,
  };
}
