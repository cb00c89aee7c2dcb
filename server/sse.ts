/**
 * Server-sent events in OpenAI's chat.completion.chunk format: a role chunk, content chunks, a
 * finish chunk (with the `cascade` trace), an optional usage chunk, then `data: [DONE]`.
 *
 * Every chunk of the answer carries an SSE `id:` — the number of answer characters sent up to and
 * including it — so a client that lost its connection reconnects with `Last-Event-ID` (and the same
 * Idempotency-Key) and gets only the rest. Headers go out with the first chunk, so a request that
 * fails before any text still gets a plain HTTP error status.
 */
import type { Response } from 'express';
import type { CascadeResult, CascadeTrace, TokenLogprob } from '../common/types.js';

export interface ChunkIdentity {
  id: string;
  created: number;
  model: string;
}

export class CompletionStream {
  /** Answer characters sent so far, counted from the start of the answer (resumes start later). */
  offset: number;
  private opened = false;

  constructor(
    private readonly res: Response,
    private readonly ident: ChunkIdentity,
    private readonly includeUsage: boolean,
    startOffset = 0,
  ) {
    this.offset = startOffset;
  }

  get started(): boolean {
    return this.opened;
  }

  get closed(): boolean {
    return this.res.writableEnded || this.res.destroyed;
  }

  private open(model: string): void {
    if (this.opened) return;
    this.opened = true;
    this.res.status(200);
    this.res.setHeader('content-type', 'text/event-stream; charset=utf-8');
    this.res.setHeader('cache-control', 'no-cache');
    this.res.setHeader('connection', 'keep-alive');
    this.res.flushHeaders();
    this.ident.model = model;
    this.send({ delta: { role: 'assistant', content: '' } }, null);
  }

  private send(choice: { delta: object; logprobs?: unknown; finish_reason?: string | null }, id: number | null, extra: object = {}): void {
    if (this.closed) return;
    const chunk = {
      id: this.ident.id,
      object: 'chat.completion.chunk',
      created: this.ident.created,
      model: this.ident.model,
      system_fingerprint: null,
      choices: [{ index: 0, logprobs: null, finish_reason: null, ...choice }],
      ...(this.includeUsage && { usage: null }),
      ...extra,
    };
    this.res.write(`${id === null ? '' : `id: ${id}\n`}data: ${JSON.stringify(chunk)}\n\n`);
  }

  /** Text of the answer, in order. */
  content(text: string, model: string, logprob: TokenLogprob | null = null, logprobsOn = false): void {
    if (!text) return;
    this.open(model);
    this.offset += text.length;
    this.send({ delta: { content: text }, ...(logprobsOn && { logprobs: { content: logprob ? [logprob] : [] } }) }, this.offset);
  }

  /** Opt-in drafts: text of an answer that is still being judged, marked as such. */
  draft(text: string, step: number, model: string): void {
    this.open(model);
    this.send({ delta: { content: text } }, null, { cascade: { draft: true, step, model } });
  }

  /** Opt-in drafts: the draft of `step` was not accepted; what follows replaces it. */
  draftRejected(step: number): void {
    if (!this.opened) return;
    this.send({ delta: {} }, null, { cascade: { draft_rejected: true, step } });
  }

  /** The rest of the accepted answer (what was not streamed live), then the end. */
  finish(result: CascadeResult, logprobsOn: boolean, extra: { draftAccepted?: number } = {}): void {
    this.open(result.model);
    this.ident.model = result.model;
    const rest = result.content.slice(this.offset);
    const tokens = logprobsOn ? result.logprobs : null;
    if (tokens && this.offset === 0 && tokens.map((t) => t.token).join('') === result.content) {
      // Token-sized chunks, each with its logprob, when the answer came with them.
      for (const t of tokens) this.content(t.token, result.model, t, true);
    } else {
      for (const piece of rest.match(/\S*\s*/g)?.filter(Boolean) ?? []) this.content(piece, result.model, null, logprobsOn);
    }
    this.end(result.finishReason, result.cascade, result.usage, extra);
  }

  private end(finishReason: string, cascade: CascadeTrace, usage: CascadeResult['usage'], extra: { draftAccepted?: number }): void {
    this.send({ delta: {}, finish_reason: finishReason }, null, {
      cascade: { ...cascade, ...(extra.draftAccepted !== undefined && { draft_accepted: extra.draftAccepted }) },
    });
    if (this.includeUsage && !this.closed) this.res.write(`data: ${JSON.stringify({ ...this.chunkBase(), choices: [], usage })}\n\n`);
    if (!this.closed) this.res.end('data: [DONE]\n\n');
  }

  private chunkBase() {
    return { id: this.ident.id, object: 'chat.completion.chunk', created: this.ident.created, model: this.ident.model, system_fingerprint: null };
  }

  /**
   * An error after text was sent: an OpenAI-shaped error event, then the connection closes with no
   * [DONE], so no client mistakes what it has for a complete answer.
   */
  fail(error: { message: string; type: string; code: string | null; cascade?: unknown }): void {
    if (this.closed) return;
    this.res.write(`data: ${JSON.stringify({ error: { param: null, ...error } })}\n\n`);
    this.res.end();
  }
}
