/**
 * Writing an answer on the wire, SSE or JSON, paced by the simulated latency, with the
 * response-shaping faults (slow-first-token, stream-cut, stream-stall, malformed-chunk, no-done)
 * applied to the bytes.
 */
import type { Response } from 'express';
import type { Attempt } from './attempt-log.js';
import type { GeneratedAnswer, GeneratedToken } from './backends/types.js';
import type { FaultName } from './faults.js';
import { sleep, type Timing } from './latency.js';
import { chunkBody, completionBody, contentChunkWriter, logprobContent, SSE_DONE, sseEvent, usageChunkBody, type ResponseIdentity } from './openai-wire.js';

/** Writes and resolves once the bytes are handed to the socket, so a following destroy cannot drop them. */
const writeFlushed = (res: Response, data: string | Buffer) => new Promise<void>((resolve) => res.write(data, () => resolve()));

export interface Delivery {
  res: Response;
  ident: ResponseIdentity;
  answer: GeneratedAnswer;
  timing: Timing;
  fault: FaultName | null;
  faultDelayMs: number;
  stallMs: number;
  wantLogprobs: boolean;
  includeUsage: boolean;
  attempt: Attempt;
  signal: AbortSignal;
  headers: Record<string, string>;
}

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };

/**
 * SSE written while a real model generates: each token goes out as it is made (the backend's
 * `onToken`), so the first token arrives after the prompt is read, not after the whole answer.
 * Used without faults only (the stream-shaping faults need the whole answer to place themselves).
 */
export function openLiveStream(d: Pick<Delivery, 'res' | 'ident' | 'wantLogprobs' | 'includeUsage' | 'headers'>) {
  const { res, ident } = d;
  const contentChunk = contentChunkWriter(ident, d.includeUsage);
  const open = () => {
    if (res.headersSent) return;
    res.writeHead(200, { ...SSE_HEADERS, ...d.headers });
    res.write(sseEvent(chunkBody(ident, { role: 'assistant', content: '' }, null, null, d.includeUsage)));
  };
  return {
    onToken(token: GeneratedToken): void {
      open();
      res.write(contentChunk(token.text, d.wantLogprobs ? (logprobContent([token])?.[0] ?? null) : null));
    },
    finish(answer: GeneratedAnswer, attempt: Attempt): void {
      open();
      let tail = sseEvent(chunkBody(ident, {}, answer.finishReason, null, d.includeUsage));
      if (d.includeUsage) tail += sseEvent(usageChunkBody(ident, answer));
      attempt.outcome = 'ok';
      res.end(tail + SSE_DONE);
    },
  };
}

/** SSE delivery, with the stream-shaping faults applied on the wire. */
export async function deliverStream(d: Delivery): Promise<void> {
  const { res, ident, answer, timing, fault, attempt, signal } = d;
  res.writeHead(200, { ...SSE_HEADERS, ...d.headers });
  res.flushHeaders();
  await sleep(fault === 'slow-first-token' ? d.faultDelayMs : timing.ttftMs, signal);
  if (signal.aborted) return;

  const tokens = answer.tokens;
  const n = tokens.length;
  const logprobs = d.wantLogprobs ? logprobContent(tokens) : null;
  const cutAt = fault === 'stream-cut' ? Math.floor((2 * n) / 3) : -1;
  const midAt = fault === 'stream-stall' || fault === 'malformed-chunk' ? Math.floor(n / 2) : -1;
  const contentChunk = contentChunkWriter(ident, d.includeUsage);
  let pending = sseEvent(chunkBody(ident, { role: 'assistant', content: '' }, null, null, d.includeUsage));
  const start = Date.now();
  for (let i = 0; i < n; i++) {
    if (i === cutAt) {
      attempt.outcome = 'stream-cut';
      await writeFlushed(res, pending);
      res.destroy();
      return;
    }
    if (i === midAt && fault === 'stream-stall') {
      attempt.outcome = 'stream-stall';
      await writeFlushed(res, pending);
      await sleep(d.stallMs, signal);
      res.destroy();
      return;
    }
    if (i === midAt && fault === 'malformed-chunk') {
      pending += `data: {"id":"${ident.id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":\n\n`;
    }
    const wait = timing.perPieceMs > 0 ? start + i * timing.perPieceMs - Date.now() : 0;
    if (wait > 1) {
      res.write(pending);
      pending = '';
      await sleep(wait, signal);
      if (signal.aborted) return;
    }
    pending += contentChunk(tokens[i]!.text, logprobs ? logprobs[i]! : null);
  }
  pending += sseEvent(chunkBody(ident, {}, answer.finishReason, null, d.includeUsage));
  if (d.includeUsage) pending += sseEvent(usageChunkBody(ident, answer));
  attempt.outcome = fault === 'malformed-chunk' || fault === 'no-done' ? fault : 'ok';
  if (fault !== 'no-done') pending += SSE_DONE;
  res.end(pending);
}

/**
 * JSON delivery. Stream-only faults act on the body: stream-cut sends 2/3 of the body then
 * destroys the socket; stream-stall sends half, goes silent, then destroys; malformed-chunk
 * answers 200 with a truncated (invalid) JSON body; no-done has nothing to drop and is ignored.
 */
export async function deliverJson(d: Delivery): Promise<void> {
  const { res, fault, attempt, signal } = d;
  const body = JSON.stringify(completionBody(d.ident, d.answer, d.wantLogprobs));
  const full = Buffer.from(body, 'utf8');
  const sent = fault === 'malformed-chunk' ? full.subarray(0, Math.floor(full.length / 2)) : full;
  const headers = { 'content-type': 'application/json', 'content-length': String(sent.length), ...d.headers };
  const generationMs = d.timing.perPieceMs * Math.max(0, d.answer.tokens.length - 1);
  if (fault === 'slow-first-token') {
    res.writeHead(200, headers);
    res.flushHeaders();
    await sleep(d.faultDelayMs + generationMs, signal);
  } else {
    await sleep(d.timing.ttftMs + generationMs, signal);
  }
  if (signal.aborted) return;
  if (fault === 'stream-cut' || fault === 'stream-stall') {
    attempt.outcome = fault;
    if (!res.headersSent) res.writeHead(200, headers);
    const part = fault === 'stream-cut' ? Math.floor((2 * full.length) / 3) : Math.floor(full.length / 2);
    await writeFlushed(res, full.subarray(0, part));
    if (fault === 'stream-stall') await sleep(d.stallMs, signal);
    res.destroy();
    return;
  }
  attempt.outcome = fault === 'malformed-chunk' ? 'malformed-chunk' : 'ok';
  if (!res.headersSent) res.writeHead(200, headers);
  res.end(sent);
}
