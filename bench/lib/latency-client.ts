/**
 * One streaming chat request as a client sees it: when the first answer text arrived (a content
 * delta that is not a draft), when the stream ended, and what the final chunk's `cascade` trace
 * says (model, cost, escalations, early stops). Plain fetch and SSE parsing, so that nothing
 * between the socket and the clock buffers or reorders chunks.
 */
import type { CascadeTrace } from '../../common/types.js';
import { sseEvents } from '../../common/sse-events.js';

export interface StreamTiming {
  /** Epoch ms the request was sent (same clock as the farm's attempt log). */
  sentAt: number;
  /** Sent → first answer text; null when no answer text arrived. */
  ttftMs: number | null;
  /** Sent → the stream ended. */
  totalMs: number;
  workflowId: string | null;
  /** The model whose answer was returned (the final chunk's `model`). */
  model: string | null;
  content: string;
  trace: CascadeTrace | null;
  /** The stream ended with [DONE]. */
  done: boolean;
  /** Why the request did not end with a complete answer; null when it did. */
  error: string | null;
}

interface Chunk {
  model?: string;
  choices?: { delta?: { content?: string }; finish_reason?: string | null }[];
  cascade?: CascadeTrace & { draft?: boolean };
  error?: { message: string };
}

export async function streamChat(apiUrl: string, model: string, prompt: string, timeoutMs: number): Promise<StreamTiming> {
  const sentAt = Date.now();
  const t0 = performance.now();
  const out: StreamTiming = { sentAt, ttftMs: null, totalMs: 0, workflowId: null, model: null, content: '', trace: null, done: false, error: null };
  try {
    const res = await fetch(`${apiUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: prompt }], stream: true }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    out.workflowId = res.headers.get('x-cascade-workflow-id');
    if (!res.ok || !res.headers.get('content-type')?.includes('text/event-stream')) {
      out.error = `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`;
      return out;
    }
    for await (const { data } of sseEvents(res.body as unknown as AsyncIterable<Uint8Array>)) {
      if (data === '[DONE]') {
        out.done = true;
        continue;
      }
      const chunk = JSON.parse(data) as Chunk;
      if (chunk.error) out.error = chunk.error.message;
      const choice = chunk.choices?.[0];
      const text = choice?.delta?.content;
      if (text && !chunk.cascade?.draft) {
        out.ttftMs ??= performance.now() - t0;
        out.content += text;
      }
      if (choice?.finish_reason) {
        out.model = chunk.model ?? null;
        out.trace = chunk.cascade ?? null;
      }
    }
    if (!out.done && !out.error) out.error = 'the stream ended without [DONE]';
  } catch (err) {
    out.error = (err as Error).message;
  } finally {
    out.totalMs = performance.now() - t0;
  }
  return out;
}
