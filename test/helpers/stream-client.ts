/**
 * A streaming chat client for the live-answer tests: posts `stream: true` and records every SSE
 * event with the client's clock, the answer text (drafts aside) and whether [DONE] came.
 */
import { sseEvents } from '../../common/sse-events.js';
import type { Attempt } from '../../farm/index.js';

export interface TimedEvent {
  id: string | null;
  data: any;
  /** Client clock when the event arrived. */
  at: number;
}

export interface StreamRead {
  status: number;
  workflowId: string;
  events: TimedEvent[];
  done: boolean;
  text: string;
}

/** Posts a streaming chat request and reads its events; `stopAfterChars` drops the connection early. */
export async function streamChat(
  apiUrl: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
  stopAfterChars = Infinity,
): Promise<StreamRead> {
  const ac = new AbortController();
  const res = await fetch(`${apiUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ stream: true, ...body }),
    signal: ac.signal,
  });
  const read: StreamRead = { status: res.status, workflowId: res.headers.get('x-cascade-workflow-id') ?? '', events: [], done: false, text: '' };
  if (!res.headers.get('content-type')?.includes('text/event-stream')) {
    read.events.push({ id: null, data: await res.json(), at: Date.now() });
    return read;
  }
  try {
    for await (const { id, data } of sseEvents(res.body as unknown as AsyncIterable<Uint8Array>)) {
      if (data === '[DONE]') {
        read.done = true;
        continue;
      }
      const parsed = JSON.parse(data);
      read.events.push({ id, data: parsed, at: Date.now() });
      if (!parsed.cascade?.draft) read.text += parsed.choices?.[0]?.delta?.content ?? '';
      if (read.text.length >= stopAfterChars) {
        ac.abort();
        return read;
      }
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  }
  return read;
}

/** The farm attempts of one request (its calls carry `<workflowId>/…` request ids), oldest first. */
export const attemptsOf = async (farmLog: () => Promise<Attempt[]>, workflowId: string) =>
  (await farmLog()).filter((a) => a.request_id?.startsWith(`${workflowId}/`)).sort((a, b) => a.t_ms - b.t_ms);

export const firstContentAt = (r: StreamRead) => r.events.find((e) => e.data.choices?.[0]?.delta?.content)!.at;
export const finalChunk = (r: StreamRead) => r.events.find((e) => e.data.choices?.[0]?.finish_reason)?.data;
