/**
 * The activity's end of the live-answer side channel (common/stream.ts): one chunked HTTP POST per
 * model call, a JSON line per delta, written as the upstream produces them. Best effort by design:
 * if the API that asked for the stream is gone (crashed, client left), the call goes on and its
 * result still reaches the workflow; the client gets the answer from the durable result.
 */
import { Agent, request, type ClientRequest } from 'node:http';
import { STREAM_PATH, STREAM_TOKEN_HEADER, type StreamKind, type StreamMessage, type StreamReceiver, type StreamTarget } from '../common/stream.js';

/** Keep-alive sockets to the API processes: one TCP handshake per connection, not per call. */
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

export interface StreamSink {
  delta(text: string): void;
  end(outcome: Extract<StreamMessage, { type: 'end' }>['outcome'], reason?: string): void;
}

export interface SinkMeta {
  workflowId: string;
  call: string;
  step: number;
  model: string;
  kind: StreamKind;
  attempt: number;
  /** The call continues this text (assistant-prefix continuation): the API counts it as already produced. */
  prefix?: string;
}

/** The API processes' hubs in this process (server/stream-hub.ts), by id. */
const localHubs = new Map<string, { receiver(workflowId: string, token: string): StreamReceiver | null }>();

/** Called by an API process for its hub: calls made in this process reach it without HTTP. */
export function registerLocalStreamHub(hub: { id: string; receiver(workflowId: string, token: string): StreamReceiver | null }): void {
  localHubs.set(hub.id, hub);
}

/**
 * `inProcess`: the call runs in this process as a local activity (an API process's embedded
 * router with `dispatch: local`); when the target is this process's own hub, the deltas are
 * handed over in memory: no HTTP request, no serialisation.
 */
export function openStreamSink(target: StreamTarget, meta: SinkMeta, inProcess = false): StreamSink {
  const hub = inProcess && target.hub ? localHubs.get(target.hub) : undefined;
  if (hub) return memorySink(hub.receiver(meta.workflowId, target.token), meta);
  return httpSink(target, meta);
}

/** The first message of a call, the same in memory and over HTTP. */
const startMessage = (meta: SinkMeta): StreamMessage => ({
  type: 'start',
  call: meta.call,
  step: meta.step,
  model: meta.model,
  kind: meta.kind,
  attempt: meta.attempt,
  ...(meta.prefix && { prefix: meta.prefix }),
});

function memorySink(apply: StreamReceiver | null, meta: SinkMeta): StreamSink {
  // Nobody waits for it (the client left): the call goes on, as over HTTP.
  const send = (m: StreamMessage) => apply?.(m);
  send(startMessage(meta));
  let ended = false;
  return {
    delta(text) {
      if (text && !ended) send({ type: 'delta', text });
    },
    end(outcome, reason) {
      if (ended) return;
      ended = true;
      send({ type: 'end', outcome, ...(reason && { reason }) });
    },
  };
}

function httpSink(target: StreamTarget, meta: SinkMeta): StreamSink {
  let req: ClientRequest | null = null;
  let broken = false;
  const url = new URL(`${STREAM_PATH}/${encodeURIComponent(meta.workflowId)}`, target.url);
  try {
    req = request(url, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/x-ndjson', [STREAM_TOKEN_HEADER]: target.token },
    });
    req.setNoDelay(true);
    req.on('error', () => {
      broken = true;
    });
    // The API answers only when the call ends; drain it so the socket returns to the pool.
    req.on('response', (res) => res.resume());
  } catch {
    broken = true;
  }
  // Deltas that arrive in the same event-loop turn go out in one write (one syscall, one packet).
  let pending = '';
  const flush = () => {
    if (!broken && req && pending) req.write(pending);
    pending = '';
  };
  const send = (m: StreamMessage) => {
    if (broken || !req) return;
    if (!pending) setImmediate(flush);
    pending += `${JSON.stringify(m)}\n`;
  };
  send(startMessage(meta));
  let ended = false;
  return {
    delta(text) {
      if (text) send({ type: 'delta', text });
    },
    end(outcome, reason) {
      if (ended) return;
      ended = true;
      send({ type: 'end', outcome, ...(reason && { reason }) });
      flush();
      if (!broken && req) req.end();
    },
  };
}

/**
 * One message on its own request (the workflow's `promote`): waits for the API's answer so the
 * workflow knows it arrived, but never fails — an API that is gone has no client to show it to.
 */
export async function sendStreamMessage(target: StreamTarget, workflowId: string, message: StreamMessage, timeoutMs = 2000): Promise<boolean> {
  try {
    const res = await fetch(new URL(`${STREAM_PATH}/${encodeURIComponent(workflowId)}`, target.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', [STREAM_TOKEN_HEADER]: target.token },
      body: `${JSON.stringify(message)}\n`,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}
