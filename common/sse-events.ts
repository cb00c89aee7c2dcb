/**
 * Reading a server-sent-events body as a client does: one `{id, data}` per event, as the events
 * arrive (`data` is the raw text of its `data:` line, `[DONE]` included). Used by the tests and
 * the benchmarks that read Cascade's streams.
 */
export interface SseEvent {
  id: string | null;
  data: string;
}

export async function* sseEvents(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true });
    let sep: number;
    while ((sep = buffer.indexOf('\n\n')) >= 0) {
      const raw = buffer.slice(0, sep);
      buffer = buffer.slice(sep + 2);
      const data = /^data: (.*)$/m.exec(raw)?.[1];
      if (data !== undefined) yield { id: /^id: (.*)$/m.exec(raw)?.[1] ?? null, data };
    }
  }
}
