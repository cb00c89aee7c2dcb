/**
 * The OpenAI chat-completions wire format: response bodies, stream chunks and error bodies.
 * One place for the shapes, so every pool and every fault speaks the same dialect.
 */
import type { AttemptOutcome } from './attempt-log.js';
import type { GeneratedAnswer, GeneratedToken } from './backends/types.js';

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** An error the farm answers with: HTTP status, OpenAI-shaped body, and the attempt-log outcome. */
export class FarmHttpError extends Error {
  override name = 'FarmHttpError';
  constructor(
    readonly status: number,
    readonly body: OpenAIErrorBody,
    readonly outcome: AttemptOutcome,
    readonly headers: Record<string, string> = {},
  ) {
    super(body.error.message);
  }
}

const err = (message: string, type: string, code: string | null, param: string | null = null): OpenAIErrorBody => ({
  error: { message, type, param, code },
});

/** The closed list of errors the farm produces, mapping machine codes to statuses. */
export const farmErrors = {
  invalidRequest: (message: string, param: string | null = null) =>
    new FarmHttpError(400, err(message, 'invalid_request_error', 'invalid_request_error', param), 'invalid_request'),
  invalidJson: (detail: string) =>
    new FarmHttpError(400, err(`We could not parse the JSON body of your request. (${detail})`, 'invalid_request_error', 'invalid_json'), 'invalid_request'),
  tooLarge: (limit: number) =>
    new FarmHttpError(413, err(`Request body too large: the limit is ${limit} bytes.`, 'invalid_request_error', 'request_too_large'), 'payload_too_large'),
  modelNotFound: (model: string, pool: string) =>
    new FarmHttpError(
      404,
      err(`The model \`${model}\` does not exist on farm pool "${pool}".`, 'invalid_request_error', 'model_not_found', 'model'),
      'model_not_found',
    ),
  promptNotInReplaySet: (model: string) =>
    new FarmHttpError(
      404,
      err(
        `No recorded answer of \`${model}\` for this prompt (matched on the last user message or x-replay-id), and the pool has no fallback backend.`,
        'invalid_request_error',
        'prompt_not_in_replay_set',
        'messages',
      ),
      'not_found',
    ),
  rateLimit: (retryAfterSeconds?: number) =>
    new FarmHttpError(
      429,
      err('Rate limit reached for requests (injected by the model farm).', 'requests', 'rate_limit_exceeded'),
      '429',
      retryAfterSeconds !== undefined ? { 'retry-after': String(retryAfterSeconds) } : {},
    ),
  serverError: () => new FarmHttpError(500, err('The server had an error while processing your request (injected).', 'server_error', null), '500'),
  unavailable: () =>
    new FarmHttpError(503, err('The engine is currently overloaded, please try again later (injected).', 'server_error', 'service_unavailable'), '503'),
  contextLength: (window: number, promptTokens: number, maxTokens: number) =>
    new FarmHttpError(
      400,
      err(
        `This model's maximum context length is ${window} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
        'invalid_request_error',
        'context_length_exceeded',
        'messages',
      ),
      'context_length_exceeded',
    ),
  contentFilter: () =>
    new FarmHttpError(
      400,
      err(
        'Your request was rejected as a result of our safety system (injected by the model farm).',
        'invalid_request_error',
        'content_policy_violation',
        'messages',
      ),
      'content_policy_violation',
    ),
  routeNotFound: (method: string, path: string) =>
    new FarmHttpError(404, err(`Unknown route ${method} ${path}.`, 'invalid_request_error', 'unknown_url'), 'not_found'),
};

/** Per-response identity shared by the body and every stream chunk. */
export interface ResponseIdentity {
  id: string;
  created: number;
  model: string;
  simulated: boolean;
}

const FINGERPRINT = 'fp_cascade_farm';

export interface LogprobEntry {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

const bytesOf = (s: string) => Array.from(Buffer.from(s, 'utf8'));

/** OpenAI `logprobs.content` entries, or null when the tokens carry no confidence signal. */
export function logprobContent(tokens: readonly GeneratedToken[]): LogprobEntry[] | null {
  if (tokens.length === 0 || tokens[0]!.logprob === undefined) return null;
  return tokens.map((t) => ({
    token: t.text,
    logprob: t.logprob ?? 0,
    bytes: bytesOf(t.text),
    top_logprobs: (t.topLogprobs ?? []).map((a) => ({ token: a.token, logprob: a.logprob, bytes: bytesOf(a.token) })),
  }));
}

export function usageOf(answer: GeneratedAnswer) {
  return {
    prompt_tokens: answer.inputTokens,
    completion_tokens: answer.outputTokens,
    total_tokens: answer.inputTokens + answer.outputTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

const simulatedFlag = (ident: ResponseIdentity) => (ident.simulated ? { simulated: true } : {});

export function completionBody(ident: ResponseIdentity, answer: GeneratedAnswer, wantLogprobs: boolean) {
  const content = wantLogprobs ? logprobContent(answer.tokens) : null;
  return {
    id: ident.id,
    object: 'chat.completion',
    created: ident.created,
    model: ident.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: answer.text, refusal: null, annotations: [] },
        logprobs: content ? { content, refusal: null } : null,
        finish_reason: answer.finishReason,
      },
    ],
    usage: usageOf(answer),
    service_tier: 'default',
    system_fingerprint: FINGERPRINT,
    ...simulatedFlag(ident),
  };
}

/** One `chat.completion.chunk`. `usage` is null on every chunk except the final usage chunk. */
export function chunkBody(
  ident: ResponseIdentity,
  delta: { role?: 'assistant'; content?: string },
  finishReason: string | null,
  logprobs: LogprobEntry[] | null,
  withUsageField: boolean,
) {
  return {
    id: ident.id,
    object: 'chat.completion.chunk',
    created: ident.created,
    model: ident.model,
    service_tier: 'default',
    system_fingerprint: FINGERPRINT,
    choices: [{ index: 0, delta, logprobs: logprobs ? { content: logprobs, refusal: null } : null, finish_reason: finishReason }],
    ...(withUsageField ? { usage: null } : {}),
    ...simulatedFlag(ident),
  };
}

export function usageChunkBody(ident: ResponseIdentity, answer: GeneratedAnswer) {
  return {
    id: ident.id,
    object: 'chat.completion.chunk',
    created: ident.created,
    model: ident.model,
    service_tier: 'default',
    system_fingerprint: FINGERPRINT,
    choices: [],
    usage: usageOf(answer),
    ...simulatedFlag(ident),
  };
}

export const sseEvent = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;

const CONTENT_MARK = '\u0000farm-content\u0000';

/**
 * SSE content chunks of one response, fast: the fixed parts of the chunk JSON are serialised once and
 * only the token text (and its logprob entry) per chunk. The output is byte-identical to
 * `sseEvent(chunkBody(ident, {content}, null, entry ? [entry] : null, withUsageField))`.
 */
export function contentChunkWriter(ident: ResponseIdentity, withUsageField: boolean): (text: string, entry: LogprobEntry | null) => string {
  const template = JSON.stringify(chunkBody(ident, { content: CONTENT_MARK }, null, null, withUsageField));
  const [head, tail] = template.split(JSON.stringify(CONTENT_MARK)) as [string, string];
  const logprobsAt = tail.indexOf('"logprobs":null') + '"logprobs":'.length;
  const start = `data: ${head}`;
  const middle = tail.slice(0, logprobsAt);
  const end = `${tail.slice(logprobsAt + 'null'.length)}\n\n`;
  return (text, entry) => start + JSON.stringify(text) + middle + (entry ? `{"content":[${JSON.stringify(entry)}],"refusal":null}` : 'null') + end;
}
export const SSE_DONE = 'data: [DONE]\n\n';
