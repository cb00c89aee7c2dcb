/**
 * The contract every farm backend implements (replay, synthetic, llama).
 * The pool server turns a GeneratedAnswer into the OpenAI wire format (non-stream or SSE),
 * applies simulated latency and injected faults; backends only produce the answer.
 */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | 'developer';
  content: string;
}

export interface GenerateRequest {
  /** The request's `model`: the model that must answer. */
  model: string;
  messages: ChatMessage[];
  maxTokens?: number;
  temperature?: number;
  /** Dataset row id from the `x-replay-id` header, when the caller sent one. */
  replayId?: string;
  /** True when the caller asked for `logprobs`. */
  wantLogprobs: boolean;
  /** 0..20, from `top_logprobs`. */
  topLogprobs: number;
  /** Requested answer length in tokens (synthetic backend, from the `x-farm-output-tokens` header). */
  outputTokens?: number;
  /** The schema of `response_format: {type: "json_schema"}`, when the caller sent one. */
  jsonSchema?: unknown;
  /** Aborted when the client goes away; long generations should stop. */
  signal?: AbortSignal;
  /**
   * Backends that really generate (llama) call this with each token once it is final, in order, so
   * the pool can stream it at once; the whole answer is still returned at the end.
   */
  onToken?: (token: GeneratedToken) => void;
}

export interface GeneratedToken {
  /** Token text; the pieces concatenate to the answer text. */
  text: string;
  /** Natural-log probability, when the backend has a confidence signal. */
  logprob?: number;
  topLogprobs?: { token: string; logprob: number }[];
}

export interface GeneratedAnswer {
  text: string;
  tokens: GeneratedToken[];
  inputTokens: number;
  outputTokens: number;
  finishReason: 'stop' | 'length';
  /** True for text that no real model wrote (synthetic backend). Surfaces in the model list and responses. */
  simulated: boolean;
  /** Dataset row id of a replayed answer (sent back as `x-farm-replay-id`, so benchmarks can join labels). */
  sourceId?: string;
  /** Recorded latency for this answer, used by the pool's latency simulation when present. */
  recordedLatencyMs?: number;
}

export interface Backend {
  readonly kind: 'replay' | 'synthetic' | 'llama';
  /** Model names this backend can answer for. */
  models(): string[];
  /** null when this backend has no answer for the request (e.g. a prompt not in the replay set). */
  generate(req: GenerateRequest): Promise<GeneratedAnswer | null>;
  close?(): Promise<void>;
}
