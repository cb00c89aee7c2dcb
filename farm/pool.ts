/**
 * One pool: an OpenAI-compatible server (express app factory, no listen here) serving
 * POST /v1/chat/completions and GET /v1/models for the models the pool hosts, with simulated
 * latency, a concurrency limit, injected faults and an attempt record per request.
 */
import { createHash, randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import { estimateTokens } from '../common/dataset.js';
import type { Backend, ChatMessage, GenerateRequest } from './backends/types.js';
import type { LatencyConfig } from './config.js';
import { CONTROL_PREFIXES, createControlRouter, type FarmState } from './control.js';
import { deliverJson, deliverStream, openLiveStream, type Delivery } from './delivery.js';
import { FAULT_DELAY_HEADER, FAULT_HEADER, FaultHeaderError, parseFaultHeader } from './faults.js';
import { planTiming, Semaphore } from './latency.js';
import { FarmHttpError, farmErrors, type ResponseIdentity } from './openai-wire.js';
import { lastUserMessage } from './tokens.js';
import { continuationOf, continueAnswer } from './continuation.js';

export const REPLAY_ID_HEADER = 'x-replay-id';
export const OUTPUT_TOKENS_HEADER = 'x-farm-output-tokens';
export const SIMULATED_HEADER = 'x-farm-simulated';
/** Response header: the dataset row id a replayed answer came from. */
export const REPLAY_SOURCE_HEADER = 'x-farm-replay-id';

export interface PoolModel {
  name: string;
  contextWindow: number;
  latency: LatencyConfig;
  backend: Backend;
  /** Answers what `backend` cannot (the pool's `fallback`), or null. */
  fallback: Fallback | null;
}

export interface Fallback {
  backend: Backend;
  /**
   * The real local model that answers instead, under its own name and at its own (real) speed;
   * null for the synthetic stand-in, which answers as the requested model with its simulated latency.
   */
  model: string | null;
}

/** A real model's time is its own: nothing simulated on top. */
const REAL_LATENCY: LatencyConfig = { ttft_ms: 0, tokens_per_s: 0, jitter: 0, recorded_latency_scale: 0 };

export interface PoolContext {
  name: string;
  models: Map<string, PoolModel>;
  concurrency: number;
  maxBodyBytes: number;
  faultSettings: { slow_first_token_ms: number; stall_ms: number };
  state: FarmState;
  logger: Logger;
}

const CHAT_PATH = '/v1/chat/completions';
/** `created` of every model in /v1/models: fixed, so listings are stable. */
const MODELS_CREATED = 1_700_000_000;

const contentPart = z.object({ type: z.string(), text: z.string().optional() });
const chatRequestSchema = z.object({
  model: z.string().min(1),
  messages: z
    .array(
      z.object({
        role: z.enum(['system', 'user', 'assistant', 'tool', 'developer']),
        content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
        /** DeepSeek/Mistral: continue this (last, assistant) message. */
        prefix: z.boolean().nullish(),
      }),
    )
    .min(1),
  stream: z.boolean().nullish(),
  /** vLLM: continue the last (assistant) message instead of starting a new one. */
  continue_final_message: z.boolean().nullish(),
  add_generation_prompt: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  n: z.literal(1, { message: 'the farm answers with one choice (n must be 1)' }).nullish(),
  response_format: z
    .object({ type: z.string(), json_schema: z.object({ schema: z.unknown().optional() }).passthrough().nullish() })
    .passthrough()
    .nullish(),
});
type ChatRequest = z.infer<typeof chatRequestSchema>;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function headerValue(req: Request, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function toMessages(chat: ChatRequest): ChatMessage[] {
  return chat.messages.map((m) => ({
    role: m.role,
    content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text ?? '').join(''),
  }));
}

function optionalInt(req: Request, header: string): number | undefined {
  const raw = headerValue(req, header);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw farmErrors.invalidRequest(`${header} must be a non-negative integer`, header);
  return n;
}

export function createPoolApp(ctx: PoolContext): express.Express {
  const { state } = ctx;
  const semaphore = new Semaphore(ctx.concurrency);
  state.pools.set(ctx.name, () => ({
    name: ctx.name,
    models: [...ctx.models.keys()],
    concurrency: ctx.concurrency,
    in_flight: semaphore.inFlight,
    queued: semaphore.queued,
  }));
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  const modelList = [...ctx.models.values()].map((m) => {
    const simulated = m.backend.kind === 'synthetic';
    return {
      id: m.name,
      object: 'model',
      created: MODELS_CREATED,
      owned_by: simulated ? 'cascade-farm (simulated)' : `cascade-farm (${m.backend.kind})`,
      context_window: m.contextWindow,
      ...(simulated ? { simulated: true } : {}),
      ...(!simulated && m.fallback ? (m.fallback.model ? { fallback_model: m.fallback.model } : { simulated_fallback: true }) : {}),
    };
  });
  app.get('/v1/models', (_req, res) => {
    res.json({ object: 'list', data: modelList });
  });
  app.get('/v1/models/*id', (req, res) => {
    const id = ([] as string[]).concat(req.params.id).join('/');
    const model = modelList.find((m) => m.id === id);
    if (!model) throw farmErrors.modelNotFound(id, ctx.name);
    res.json(model);
  });

  app.post(CHAT_PATH, express.json({ limit: ctx.maxBodyBytes, type: () => true }), async (req, res) => {
    const requestId = headerValue(req, 'x-request-id') ?? null;
    const body: unknown = req.body;
    const stream = isRecord(body) && body.stream === true;
    const attempt = state.log.start(ctx.name, isRecord(body) && typeof body.model === 'string' ? body.model : null, requestId, stream);
    const ac = new AbortController();
    res.on('close', () => {
      attempt.end_ms = Date.now();
      if (!res.writableFinished) ac.abort();
      if (attempt.outcome === 'pending') attempt.outcome = 'client-closed';
      // No prompt or answer text in logs: the attempt record only.
      const { model, fault, outcome, request_id, stream, backend } = attempt;
      ctx.logger.debug({ model, fault, outcome, request_id, stream, backend, ms: Date.now() - attempt.t_ms }, 'attempt');
    });
    const headers: Record<string, string> = { 'x-request-id': requestId ?? `req_${randomUUID()}`, 'x-farm-pool': ctx.name };
    try {
      const parsed = chatRequestSchema.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const param = issue?.path.join('.') || null;
        throw farmErrors.invalidRequest(`Invalid request: ${param ?? 'body'}: ${issue?.message ?? 'invalid'}`, param);
      }
      const chat = parsed.data;
      const model = ctx.models.get(chat.model);
      if (!model) throw farmErrors.modelNotFound(chat.model, ctx.name);

      let headerRules;
      try {
        const faultHeader = headerValue(req, FAULT_HEADER);
        headerRules = faultHeader ? parseFaultHeader(faultHeader) : [];
      } catch (e) {
        if (e instanceof FaultHeaderError) throw farmErrors.invalidRequest(e.message, FAULT_HEADER);
        throw e;
      }
      for (const rule of headerRules) {
        const problem = state.faults.scopeProblem(rule);
        if (problem) throw farmErrors.invalidRequest(`${FAULT_HEADER}: ${problem}`, FAULT_HEADER);
      }
      const delayOverride = optionalInt(req, FAULT_DELAY_HEADER);
      const outputTokens = optionalInt(req, OUTPUT_TOKENS_HEADER);
      const replayId = headerValue(req, REPLAY_ID_HEADER);
      const allMessages = toMessages(chat);
      const continuation = continuationOf(chat, allMessages[allMessages.length - 1]?.content ?? '');
      // A continuation is answered for the conversation before the partial answer, then cut to the rest.
      const messages = continuation ? allMessages.slice(0, -1) : allMessages;
      const requestKey = () => requestId ?? createHash('sha1').update(lastUserMessage(messages)).digest('base64');
      const fault = state.faults.choose(ctx.name, model.name, requestKey, headerRules);
      attempt.fault = fault;

      switch (fault) {
        case 'rate-limit-retry-after':
          throw farmErrors.rateLimit(2);
        case 'rate-limit':
          throw farmErrors.rateLimit();
        case 'error-once':
          throw farmErrors.serverError();
        case 'unavailable':
        case 'flap':
          throw farmErrors.unavailable();
        case 'content-filter':
          throw farmErrors.contentFilter();
        case 'reset':
          attempt.outcome = 'reset';
          req.socket.resetAndDestroy();
          return;
        case 'no-response':
          attempt.outcome = 'no-response';
          return;
      }
      const maxTokens = chat.max_completion_tokens ?? chat.max_tokens ?? undefined;
      const promptTokens = allMessages.reduce((sum, m) => sum + estimateTokens(m.content), 0);
      if (fault === 'context-length' || promptTokens + (maxTokens ?? 0) > model.contextWindow) {
        const reported = Math.max(promptTokens, model.contextWindow + 1 - (maxTokens ?? 0));
        throw farmErrors.contextLength(model.contextWindow, reported, maxTokens ?? 0);
      }

      const release = await semaphore.acquire(ac.signal);
      if (!release) return;
      try {
        const wantLogprobs = chat.logprobs === true;
        const genReq: GenerateRequest = {
          model: model.name,
          messages,
          wantLogprobs,
          topLogprobs: wantLogprobs ? (chat.top_logprobs ?? 0) : 0,
          signal: ac.signal,
          ...(maxTokens !== undefined ? { maxTokens } : {}),
          ...(chat.temperature != null ? { temperature: chat.temperature } : {}),
          ...(replayId !== undefined ? { replayId } : {}),
          ...(outputTokens !== undefined ? { outputTokens } : {}),
          ...(chat.response_format?.type === 'json_schema' && chat.response_format.json_schema?.schema !== undefined
            ? { jsonSchema: chat.response_format.json_schema.schema }
            : {}),
        };
        const ident: ResponseIdentity = {
          id: `chatcmpl-${randomUUID().replaceAll('-', '')}`,
          created: Math.floor(Date.now() / 1000),
          model: model.name,
          simulated: false,
        };
        const includeUsage = chat.stream_options?.include_usage === true;
        /** A real model's tokens go out while it generates (a stream with no fault to place); null otherwise. */
        const liveFor = (b: Backend) => {
          if (!stream || fault !== null || continuation || b.kind !== 'llama') return null;
          attempt.backend = headers['x-farm-backend'] = b.kind;
          return openLiveStream({ res, ident, wantLogprobs, includeUsage, headers });
        };
        let backend = model.backend;
        let latency = model.latency;
        let live = liveFor(backend);
        let answer = await backend.generate(live ? { ...genReq, onToken: live.onToken } : genReq);
        if (!answer && model.fallback) {
          backend = model.fallback.backend;
          const standIn = model.fallback.model;
          if (standIn) [ident.model, latency] = [standIn, REAL_LATENCY];
          live = liveFor(backend);
          answer = await backend.generate({ ...genReq, model: standIn ?? model.name, ...(live ? { onToken: live.onToken } : {}) });
        }
        if (!answer) throw farmErrors.promptNotInReplaySet(model.name);
        if (ac.signal.aborted) return;
        if (continuation) {
          const continued = continueAnswer(answer, continuation.prefix);
          answer = continued.answer;
          attempt.continuation = { style: continuation.style, prefix_chars: continuation.prefix.length, matched: continued.matched };
        }
        attempt.backend = backend.kind;
        if (live) {
          live.finish(answer, attempt);
          return;
        }
        ident.simulated = answer.simulated;
        headers['x-farm-backend'] = backend.kind;
        if (answer.simulated) headers[SIMULATED_HEADER] = 'true';
        if (answer.sourceId !== undefined) headers[REPLAY_SOURCE_HEADER] = answer.sourceId;
        const delivery: Delivery = {
          res,
          ident,
          answer,
          timing: planTiming(latency, answer.outputTokens, answer.tokens.length, answer.recordedLatencyMs),
          fault,
          faultDelayMs: delayOverride ?? ctx.faultSettings.slow_first_token_ms,
          stallMs: delayOverride ?? ctx.faultSettings.stall_ms,
          wantLogprobs,
          includeUsage,
          attempt,
          signal: ac.signal,
          headers,
        };
        await (stream ? deliverStream(delivery) : deliverJson(delivery));
      } finally {
        release();
      }
    } catch (e) {
      const error = e instanceof FarmHttpError ? e : null;
      // A generation stopped because the client went away is not an error of the farm.
      if (!error && !ac.signal.aborted) ctx.logger.error({ err: e, pool: ctx.name }, 'chat completion failed');
      attempt.outcome = error?.outcome ?? '500';
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const { status, body: errorBody } = error ?? farmErrors.serverError();
      res
        .status(status)
        .set({ ...headers, ...(error?.headers ?? {}) })
        .json(errorBody);
    }
  });

  const control = createControlRouter(state, ctx.maxBodyBytes);
  for (const prefix of CONTROL_PREFIXES) app.use(prefix, control);

  app.use((req, _res, next) => next(farmErrors.routeNotFound(req.method, req.path)));
  // Central error mapping: body-parser failures and thrown FarmHttpErrors become OpenAI-shaped errors.
  // Express recognises error handlers by their four parameters.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = err as { type?: string; status?: number; message?: string };
    const error =
      err instanceof FarmHttpError
        ? err
        : e.type === 'entity.too.large'
          ? farmErrors.tooLarge(ctx.maxBodyBytes)
          : e.type === 'entity.parse.failed'
            ? farmErrors.invalidJson(e.message ?? 'parse error')
            : typeof e.status === 'number' && e.status >= 400 && e.status < 500
              ? farmErrors.invalidRequest(e.message ?? 'bad request')
              : null;
    if (!error) ctx.logger.error({ err, pool: ctx.name }, 'request failed');
    if (req.path === CHAT_PATH && req.method === 'POST') {
      const attempt = state.log.start(ctx.name, null, headerValue(req, 'x-request-id') ?? null, false);
      attempt.outcome = error?.outcome ?? '500';
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const { status, body } = error ?? farmErrors.serverError();
    res
      .status(status)
      .set(error?.headers ?? {})
      .json(body);
  });
  return app;
}
