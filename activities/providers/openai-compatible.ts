/**
 * One chat call to an OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server, the
 * farm, ...) through the official `openai` client. Streams by default so that a silent upstream is
 * noticed within the first-token and idle limits, and checks that the stream really finished:
 * a cut, stalled or malformed stream is an error, never a short answer.
 */
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import type { ChatParams, TokenLogprob, Usage } from '../../common/types.js';
import { ErrorType } from '../../common/errors.js';
import { estimatePromptTokens } from '../../workflows/policy.js';
import type { ChatProvider, ProviderCall, ProviderResult, UpstreamEndpoint } from './interface.js';
import { UpstreamFailure } from './interface.js';

export class OpenAICompatibleProvider implements ChatProvider {
  private readonly clients = new Map<string, OpenAI>();

  private client(endpoint: UpstreamEndpoint): OpenAI {
    let client = this.clients.get(endpoint.id);
    if (!client) {
      client = new OpenAI({
        baseURL: endpoint.baseUrl,
        apiKey: endpoint.apiKey ?? 'not-needed',
        maxRetries: 0, // retries are workflow logic (Temporal retry policy + failover)
        logLevel: 'off', // the client would otherwise log raw chunks, i.e. answer text
        defaultHeaders: endpoint.headers,
      });
      this.clients.set(endpoint.id, client);
    }
    return client;
  }

  async chat(call: ProviderCall): Promise<ProviderResult> {
    return call.endpoint.stream === false ? this.chatOnce(call) : this.chatStreaming(call);
  }

  private async chatStreaming(call: ProviderCall): Promise<ProviderResult> {
    const { endpoint } = call;
    // Usage estimates count the prefix a continuation sends as prompt.
    const params = withContinuation(call.params, call.continueFrom);
    const started = Date.now();
    const abort = new AbortController();
    const onOuterAbort = () => abort.abort();
    call.signal?.addEventListener('abort', onOuterAbort, { once: true });
    // Why the stream was aborted, when we aborted it: the client ends iteration silently on abort.
    let abortedFor: UpstreamFailure | null = null;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number, failure: () => UpstreamFailure) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        abortedFor = failure();
        abort.abort();
      }, ms);
    };
    arm(
      call.firstTokenTimeoutMs,
      () => new UpstreamFailure(ErrorType.UpstreamTimeout, `no response within ${call.firstTokenTimeoutMs} ms`, { retryable: false }),
    );
    const beat = setInterval(() => call.heartbeat?.(), 1000);

    let content = '';
    let finishReason: string | null = null;
    let usage: Usage | null = null;
    let upstreamModel = endpoint.upstreamModel;
    let firstTokenMs: number | null = null;
    const logprobs: TokenLogprob[] = [];
    let sawLogprobs = false;
    let stoppedFor: string | null = null;
    let deltas = 0;
    /** A failure after text was produced carries that text: another deployment may continue it. */
    const failed = (failure: UpstreamFailure) => {
      if (content) failure.partial = { text: content, usage: estimateUsage(params, content, deltas) };
      return failure;
    };
    try {
      const stream = await this.client(endpoint).chat.completions.create(
        { ...toUpstreamParams(params, endpoint, call.continueFrom), model: endpoint.upstreamModel, stream: true, stream_options: { include_usage: true } },
        { signal: abort.signal, headers: call.headers, timeout: call.attemptTimeoutMs },
      );
      for await (const chunk of stream) {
        if (firstTokenMs === null) firstTokenMs = Date.now() - started;
        arm(
          call.streamIdleTimeoutMs,
          () => new UpstreamFailure(ErrorType.StreamStalled, `stream went silent for ${call.streamIdleTimeoutMs} ms`, { retryable: false }),
        );
        // No heartbeat per chunk: the 1 s interval above keeps Temporal informed (the heartbeat
        // timeout is at least 3 s) and a chunk-rate heartbeat is a native call per token.
        if (chunk.model) upstreamModel = chunk.model;
        if (chunk.usage)
          usage = { prompt_tokens: chunk.usage.prompt_tokens, completion_tokens: chunk.usage.completion_tokens, total_tokens: chunk.usage.total_tokens };
        const choice = chunk.choices?.[0];
        if (!choice) continue;
        const delta = choice.delta?.content ?? '';
        if (delta) {
          content += delta;
          deltas++;
        }
        if (choice.finish_reason) finishReason = choice.finish_reason;
        const lp = choice.logprobs?.content;
        if (lp) {
          sawLogprobs = true;
          for (const t of lp)
            logprobs.push({ token: t.token, logprob: t.logprob, top_logprobs: t.top_logprobs?.map((x) => ({ token: x.token, logprob: x.logprob })) });
        }
        if (call.onDelta && (delta || lp)) {
          stoppedFor = call.onDelta(delta, lp ? lp.map((t) => t.logprob) : null);
          if (stoppedFor) {
            abort.abort(); // the upstream stops generating (and billing) now
            break;
          }
        }
      }
    } catch (err) {
      throw failed(abortedFor ?? classify(err));
    } finally {
      clearTimeout(timer);
      clearInterval(beat);
      call.signal?.removeEventListener('abort', onOuterAbort);
    }
    if (abortedFor) throw failed(abortedFor);
    if (call.signal?.aborted) throw new UpstreamFailure(ErrorType.UpstreamTimeout, 'cancelled', { retryable: true });
    if (stoppedFor) {
      // Billed as far as it went: the upstream sent no usage for a stream we left.
      return {
        content,
        finishReason: 'cascade_abort',
        logprobs: sawLogprobs ? logprobs : null,
        usage: estimateUsage(params, content, sawLogprobs ? logprobs.length : null),
        upstreamModel,
        latencyMs: Date.now() - started,
        firstTokenMs,
        stoppedFor,
      };
    }
    if (!finishReason) {
      // The body ended without a finish_reason: the answer is cut short, whatever [DONE] said.
      throw failed(
        new UpstreamFailure(ErrorType.StreamIncomplete, `stream ended after ${content.length} characters without finish_reason`, { retryable: false }),
      );
    }
    return {
      content,
      finishReason,
      logprobs: sawLogprobs ? logprobs : null,
      usage: usage ?? estimateUsage(params, content),
      upstreamModel,
      latencyMs: Date.now() - started,
      firstTokenMs,
    };
  }

  private async chatOnce(call: ProviderCall): Promise<ProviderResult> {
    const { endpoint } = call;
    const params = withContinuation(call.params, call.continueFrom);
    const started = Date.now();
    const beat = setInterval(() => call.heartbeat?.(), 1000);
    try {
      const res = await this.client(endpoint).chat.completions.create(
        { ...toUpstreamParams(params, endpoint, call.continueFrom), model: endpoint.upstreamModel, stream: false },
        { signal: call.signal, headers: call.headers, timeout: call.attemptTimeoutMs },
      );
      const choice = res.choices[0];
      if (!choice || !choice.finish_reason) throw new UpstreamFailure(ErrorType.StreamIncomplete, 'response has no finished choice', { retryable: false });
      const content = choice.message?.content ?? '';
      const lp = choice.logprobs?.content;
      // No stream to judge early: the whole answer is one delta (a live client still gets it).
      call.onDelta?.(content, lp ? lp.map((t) => t.logprob) : null);
      return {
        content,
        finishReason: choice.finish_reason,
        logprobs: lp ? lp.map((t) => ({ token: t.token, logprob: t.logprob })) : null,
        usage: res.usage
          ? { prompt_tokens: res.usage.prompt_tokens, completion_tokens: res.usage.completion_tokens, total_tokens: res.usage.total_tokens }
          : estimateUsage(params, content),
        upstreamModel: res.model ?? endpoint.upstreamModel,
        latencyMs: Date.now() - started,
        firstTokenMs: null,
      };
    } catch (err) {
      throw err instanceof UpstreamFailure ? err : classify(err);
    } finally {
      clearInterval(beat);
    }
  }
}

/** The request's messages, with the answer so far as the last (assistant) message when one is continued. */
function withContinuation(params: ChatParams, continueFrom: string | undefined): ChatParams {
  return continueFrom ? { ...params, messages: [...params.messages, { role: 'assistant', content: continueFrom }] } : params;
}

/**
 * The body for the endpoint. `p` already ends with the partial answer when one is continued; each
 * style marks it the way its servers expect (common/continuation.ts): without a mark a server
 * would close that message and start a new one.
 */
function toUpstreamParams(
  p: ChatParams,
  endpoint: UpstreamEndpoint,
  continueFrom: string | undefined,
): Omit<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming, 'model'> {
  const style = continueFrom ? endpoint.continuation : undefined;
  if (continueFrom && (!style || style === 'none'))
    throw new UpstreamFailure(ErrorType.ConfigurationError, `deployment ${endpoint.id} cannot continue a partial answer`, { retryable: false });
  const messages = p.messages.map((m, i) => (style === 'prefix' && i === p.messages.length - 1 ? { ...m, prefix: true } : m));
  return {
    messages: messages as OpenAI.Chat.ChatCompletionMessageParam[],
    ...(style === 'vllm' && { continue_final_message: true, add_generation_prompt: false }),
    ...(p.temperature !== undefined && { temperature: p.temperature }),
    ...(p.top_p !== undefined && { top_p: p.top_p }),
    ...(p.max_tokens !== undefined && { max_tokens: p.max_tokens }),
    ...(p.stop !== undefined && { stop: p.stop }),
    ...(p.seed !== undefined && { seed: p.seed }),
    ...(p.presence_penalty !== undefined && { presence_penalty: p.presence_penalty }),
    ...(p.frequency_penalty !== undefined && { frequency_penalty: p.frequency_penalty }),
    ...(p.response_format !== undefined && { response_format: p.response_format as OpenAI.Chat.ChatCompletionCreateParams['response_format'] }),
    ...(p.logprobs && { logprobs: true, ...(p.top_logprobs !== undefined && { top_logprobs: p.top_logprobs }) }),
  };
}

function estimateUsage(params: ChatParams, content: string, tokens: number | null = null): Usage {
  const prompt = estimatePromptTokens(params);
  const completion = tokens ?? Math.ceil(content.length / 4);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Seconds or an HTTP date in Retry-After; OpenAI also sends retry-after-ms. */
export function retryAfterMs(headers: Headers | undefined): number | null {
  if (!headers) return null;
  const ms = Number(headers.get('retry-after-ms'));
  if (Number.isFinite(ms) && ms > 0) return ms;
  const raw = headers.get('retry-after');
  if (!raw) return null;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(raw);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : null;
}

/** Maps what the client threw to the shared error names and whether the same deployment may be retried. */
export function classify(err: unknown): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err;
  if (err instanceof APIConnectionTimeoutError) return new UpstreamFailure(ErrorType.UpstreamTimeout, 'upstream request timed out', { retryable: false });
  if (err instanceof APIConnectionError) return new UpstreamFailure(ErrorType.ConnectionError, `connection failed: ${causeText(err)}`, { retryable: true });
  if (err instanceof APIError) {
    const code = err.code ?? (err.error as { code?: string } | undefined)?.code ?? null;
    const message = `upstream ${err.status ?? 'stream'} ${code ?? err.type ?? ''}: ${err.message}`.trim();
    if (code === 'context_length_exceeded') return new UpstreamFailure(ErrorType.ContextLengthExceeded, message, { retryable: false });
    if (code === 'content_policy_violation' || code === 'content_filter')
      return new UpstreamFailure(ErrorType.ContentPolicyViolation, message, { retryable: false });
    switch (err.status) {
      case 429:
        return new UpstreamFailure(ErrorType.RateLimited, message, { retryable: true, retryAfterMs: retryAfterMs(err.headers) });
      case 401:
      case 403:
        return new UpstreamFailure(ErrorType.AuthenticationFailed, message, { retryable: false });
      case 400:
      case 404:
      case 422:
        // This deployment cannot serve the request as sent; another deployment may.
        return new UpstreamFailure(ErrorType.UpstreamError, message, { retryable: false });
      case undefined:
        return new UpstreamFailure(ErrorType.UpstreamError, message, { retryable: false });
      default:
        return new UpstreamFailure(ErrorType.UpstreamError, message, { retryable: true });
    }
  }
  if (err instanceof SyntaxError) return new UpstreamFailure(ErrorType.StreamMalformed, `stream carried invalid JSON: ${err.message}`, { retryable: false });
  const text = causeText(err);
  if (/terminated|ECONNRESET|socket hang up|other side closed|premature close/i.test(text)) {
    return new UpstreamFailure(ErrorType.StreamIncomplete, `connection dropped mid-response: ${text}`, { retryable: false });
  }
  return new UpstreamFailure(ErrorType.UpstreamError, text, { retryable: true });
}

function causeText(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    const o = e as { message?: string; code?: string; cause?: unknown };
    if (o.message) parts.push(o.code ? `${o.message} (${o.code})` : o.message);
    e = o.cause;
  }
  return parts.join(': ') || String(err);
}
