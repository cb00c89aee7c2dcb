/**
 * The client side of `npm run bench:chaos`: a fixed mix of requests (streaming and not, some with
 * an Idempotency-Key, some that escalate) sent by a few concurrent callers through the OpenAI SDK
 * with its default retries, and what each caller finally saw.
 */
import OpenAI from 'openai';
import { percentile as latencyPercentile } from './latency-model.js';

export interface ChaosRequest {
  index: number;
  prompt: string;
  stream: boolean;
  /** Set on every third request: the caller retries it (same key) for up to a minute. */
  idempotencyKey: string | null;
  /** JSON asked: Mixtral's prose answer is rejected by the validators and GPT-4 answers. */
  escalates: boolean;
}

export interface ChaosOutcome {
  request: ChaosRequest;
  ok: boolean;
  ms: number;
  /** Errors the caller saw after the SDK's own retries, by type (`connection`, `http_503:no_capacity`, ...). */
  errors: string[];
  escalated: boolean;
}

/** The request mix, the same for every run: index i decides streaming, key and escalation. */
export function requestMix(prompts: string[], count: number, tag: string): ChaosRequest[] {
  return Array.from({ length: count }, (_, i) => ({
    index: i,
    prompt: prompts[i % prompts.length]!,
    stream: i % 2 === 1,
    idempotencyKey: i % 3 === 0 ? `${tag}-${i}` : null,
    escalates: i % 4 === 3,
  }));
}

/** How a caller that keeps an Idempotency-Key retries: as the chaos run did, for a minute. */
const KEYED_RETRY_MS = 60_000;

export function errorType(err: unknown): string {
  if (err instanceof OpenAI.APIConnectionError) return 'connection';
  if (err instanceof OpenAI.APIError) return `http_${err.status ?? '?'}:${err.code ?? (err.error as { code?: string } | undefined)?.code ?? 'unknown'}`;
  return `client:${(err as Error).name}`;
}

async function once(openai: OpenAI, r: ChaosRequest): Promise<{ escalated: boolean }> {
  const body = {
    model: 'cascade',
    messages: [{ role: 'user' as const, content: r.prompt }],
    ...(r.escalates && { response_format: { type: 'json_object' as const } }),
  };
  const options = r.idempotencyKey ? { headers: { 'Idempotency-Key': r.idempotencyKey } } : {};
  if (!r.stream) {
    const res = (await openai.chat.completions.create(body, options)) as unknown as { cascade?: { escalations: number } };
    return { escalated: (res.cascade?.escalations ?? 0) > 0 };
  }
  let escalated = false;
  let text = '';
  for await (const chunk of await openai.chat.completions.create({ ...body, stream: true }, options)) {
    text += chunk.choices[0]?.delta?.content ?? '';
    const trace = (chunk as unknown as { cascade?: { escalations: number } }).cascade;
    if (trace) escalated = trace.escalations > 0;
  }
  if (!text) throw new Error('empty stream');
  return { escalated };
}

/** One request as its caller makes it: the SDK retries; a keyed request is retried again by the caller. */
export async function send(openai: OpenAI, r: ChaosRequest): Promise<ChaosOutcome> {
  const started = Date.now();
  const errors: string[] = [];
  for (;;) {
    try {
      const { escalated } = await once(openai, r);
      return { request: r, ok: true, ms: Date.now() - started, errors, escalated };
    } catch (err) {
      errors.push(errorType(err));
      if (!r.idempotencyKey || Date.now() - started > KEYED_RETRY_MS) return { request: r, ok: false, ms: Date.now() - started, errors, escalated: false };
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

/** Sends the requests with `concurrency` callers; stops starting new ones after `untilMs` (epoch). */
export async function runCallers(openai: OpenAI, requests: ChaosRequest[], concurrency: number, untilMs: number): Promise<ChaosOutcome[]> {
  const outcomes: ChaosOutcome[] = [];
  let next = 0;
  const caller = async () => {
    while (next < requests.length && Date.now() < untilMs) outcomes.push(await send(openai, requests[next++]!));
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  return outcomes.sort((a, b) => a.request.index - b.request.index);
}

export function percentile(values: number[], p: number): number | null {
  return values.length === 0 ? null : latencyPercentile(values, p);
}
