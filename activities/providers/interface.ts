/**
 * The port every model provider adapter implements. Today one adapter speaks the OpenAI wire
 * format (which OpenAI, vLLM, Ollama, llama.cpp server, Groq, Together and the farm all serve);
 * a provider with another wire format adds an adapter here and nothing else changes.
 */
import type { ChatParams, TokenLogprob, Usage } from '../../common/types.js';
import type { ContinuationStyle, PartialAnswer } from '../../common/continuation.js';

export interface UpstreamEndpoint {
  /** Deployment id, e.g. `gpt-4o@api`. */
  id: string;
  baseUrl: string;
  apiKey: string | null;
  /** The model name the endpoint expects. */
  upstreamModel: string;
  /** false for endpoints that cannot stream; stall detection then relies on the attempt timeout. */
  stream: boolean;
  headers?: Record<string, string>;
  /** How the endpoint continues a partial assistant message (common/continuation.ts). */
  continuation?: ContinuationStyle;
}

export interface ProviderCall {
  endpoint: UpstreamEndpoint;
  params: ChatParams;
  headers: Record<string, string>;
  firstTokenTimeoutMs: number;
  streamIdleTimeoutMs: number;
  attemptTimeoutMs: number;
  signal?: AbortSignal;
  heartbeat?: () => void;
  /**
   * Called with every content delta as it arrives (with its tokens' logprobs when the upstream
   * sends them). Returning a reason stops the call there: the result then holds the text so far
   * with `stoppedFor` set (streaming evaluation found the answer already lost).
   */
  onDelta?: (text: string, logprobs: readonly number[] | null) => string | null;
  /** The answer so far: the endpoint continues it (its `continuation` style); the result is only the rest. */
  continueFrom?: string;
}

export interface ProviderResult {
  content: string;
  finishReason: string;
  logprobs: TokenLogprob[] | null;
  usage: Usage;
  upstreamModel: string;
  latencyMs: number;
  firstTokenMs: number | null;
  /** Set when `onDelta` stopped the call: why, and the text is only what came before. */
  stoppedFor?: string;
}

export interface ChatProvider {
  chat(call: ProviderCall): Promise<ProviderResult>;
}

/** An upstream failure, named with the shared error types. */
export class UpstreamFailure extends Error {
  readonly retryable: boolean;
  readonly retryAfterMs: number | null;
  /** The text the call had produced when it failed mid-stream (and its estimated usage), if any. */
  partial: PartialAnswer | null = null;
  constructor(
    readonly type: string,
    message: string,
    opts: { retryable: boolean; retryAfterMs?: number | null },
  ) {
    super(message);
    this.name = 'UpstreamFailure';
    this.retryable = opts.retryable;
    this.retryAfterMs = opts.retryAfterMs ?? null;
  }
}
