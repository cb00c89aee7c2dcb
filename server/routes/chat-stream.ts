/**
 * `stream: true`: the chat response as server-sent events, live.
 *
 * What streams as it is generated: the text of a call whose answer needs no evaluation (the last
 * step of a ladder, a step with evaluator `none`, a direct model call), sent by the model-call
 * activity over the side channel (server/stream-hub.ts). An evaluated step's answer is held until
 * it is accepted (a plain OpenAI client cannot be told to forget text), unless the client asked
 * for drafts (`cascade.stream_drafts`), which stream marked as such. The durable answer is the
 * workflow's result: whatever was not streamed live is sent from it, and if it does not continue
 * what was streamed, the client gets an in-band error and no [DONE] — never a wrong or truncated
 * answer presented as complete.
 *
 * Resuming: every answer chunk has an SSE id (characters sent so far). The same request with the
 * same Idempotency-Key and `Last-Event-ID: <id>` continues after that character, from the live
 * session if this process still has it, else from the durable result: no new model call.
 */
import type { Request, Response } from 'express';
import type { CascadeConfig } from '../../config/load.js';
import type { CascadeInput, CascadeResult } from '../../common/types.js';
import type { StreamHub, StreamSession, DraftEvent } from '../stream-hub.js';
import { CompletionStream } from '../sse.js';
import { ApiError, errorBody } from '../errors.js';
import { awaitResult, startOrAttach, type ChatStarter } from '../chat-workflow.js';
import { keyReused } from '../idempotency.js';
import type { ChatLocals } from '../metrics.js';

export interface StreamRequest {
  req: Request;
  res: Response;
  config: CascadeConfig;
  starter: ChatStarter;
  hub: StreamHub;
  workflowId: string;
  input: CascadeInput;
  deadlineMs: number;
  idempotencyKey: string | undefined;
  includeUsage: boolean;
  logprobs: boolean;
  drafts: boolean;
}

/** Streams one chat request; resolves with the result once the response has ended. */
export async function respondStreaming(o: StreamRequest): Promise<CascadeResult> {
  const { req, res, input, workflowId } = o;
  const resumeFrom = lastEventId(req);
  // Token logprobs do not travel over the side channel: such requests stream from the result.
  const session: StreamSession | null = o.logprobs ? null : o.hub.open(workflowId, input.requestHash);
  const out = new CompletionStream(
    res,
    { id: `chatcmpl-${workflowId}`, created: Math.floor(Date.now() / 1000), model: input.policy.name },
    o.includeUsage,
    resumeFrom,
  );
  try {
    if (session && session.requestHash !== input.requestHash) throw keyReused();
    const live = session ? followSession(session, out, o.drafts) : null;
    const streamInput: CascadeInput = session
      ? { ...input, stream: { url: callbackUrl(req, o.config), token: session.token, drafts: o.drafts, hub: o.hub.id } }
      : input;
    const { handle, joined } = await startOrAttach(o.starter, workflowId, streamInput, o.deadlineMs, res.locals.keyId as string | undefined);
    (res.locals as ChatLocals).cascadeJoined = joined;
    const onClose = () => {
      // A caller that gave up without an Idempotency-Key will never ask again: stop paying for it.
      if (!res.writableFinished && !o.idempotencyKey) handle.cancel().catch(() => {});
    };
    res.on('close', onClose);
    let result: CascadeResult;
    try {
      result = await awaitResult(handle);
    } finally {
      res.off('close', onClose);
      live?.stop();
    }
    if (result.requestHash !== input.requestHash) throw keyReused();
    if (out.closed) return result;
    // Live text may have gone out already; the cost is then only in the final chunk's trace.
    if (!out.started) res.setHeader('x-cascade-cost-usd', result.cascade.cost_usd.toFixed(8));
    const streamed = session ? session.answer.slice(0, out.offset) : '';
    if (session && out.offset > resumeFrom && !result.content.startsWith(streamed)) {
      out.fail(interrupted(out.offset, 'the accepted answer does not continue the text already streamed'));
      return result;
    }
    const draftAccepted = live?.acceptDraft(result);
    out.finish(result, o.logprobs, draftAccepted !== undefined ? { draftAccepted } : {});
    return result;
  } catch (err) {
    if (!out.started) throw err;
    const apiError = err instanceof ApiError ? err : new ApiError(500, 'Internal server error', 'server_error', 'internal_error');
    out.fail(errorBody(apiError).error);
    throw err;
  } finally {
    session?.release();
  }
}

/** Pipes a session's live text (and drafts, when asked) into the client's stream. */
function followSession(session: StreamSession, out: CompletionStream, drafts: boolean) {
  let draft: { step: number; text: string; rejected: boolean } | null = null;
  const pump = () => {
    if (session.answer.length > out.offset) out.content(session.answer.slice(out.offset), session.answerModel ?? 'cascade');
  };
  const onBroken = () => out.fail(interrupted(out.offset, session.broken ?? 'the stream broke'));
  const onDraft = (d: DraftEvent) => {
    if (!drafts) return;
    if (!draft || draft.step !== d.step) draft = { step: d.step, text: '', rejected: false };
    draft.text += d.text;
    out.draft(d.text, d.step, d.model);
  };
  const onStep = (step: number) => {
    if (draft && !draft.rejected && step > draft.step) {
      draft.rejected = true;
      out.draftRejected(draft.step);
    }
  };
  session.on('answer', pump);
  session.on('broken', onBroken);
  session.on('draft', onDraft);
  session.on('step', onStep);
  if (session.broken) onBroken();
  else pump(); // a reconnect: what this process already streamed, from the client's offset
  return {
    stop() {
      session.off('answer', pump);
      session.off('broken', onBroken);
      session.off('draft', onDraft);
      session.off('step', onStep);
    },
    /** The step whose draft became the answer (its text is already with the client), if any. */
    acceptDraft(result: CascadeResult): number | undefined {
      if (!draft) return undefined;
      if (!draft.rejected && result.cascade.final_step === draft.step && draft.text === result.content && out.offset === 0) {
        out.offset = result.content.length;
        return draft.step;
      }
      if (!draft.rejected) out.draftRejected(draft.step);
      return undefined;
    },
  };
}

function interrupted(offset: number, why: string) {
  return {
    message: `The answer stream was interrupted after ${offset} characters (${why}). Repeat the request with the same Idempotency-Key for the complete answer.`,
    type: 'server_error',
    code: 'stream_interrupted',
  };
}

/** `Last-Event-ID` (what an EventSource sends on reconnect): answer characters the client has. */
function lastEventId(req: Request): number {
  const raw = req.get('last-event-id');
  if (raw === undefined) return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0)
    throw ApiError.invalid('Last-Event-ID must be a non-negative integer (an id from this stream)', 'Last-Event-ID', 'invalid_value');
  return n;
}

/** Where the model-call workers reach this process: configured, or the address the client used. */
function callbackUrl(req: Request, config: CascadeConfig): string {
  const configured = config.raw.server.stream_callback_url;
  if (configured) return configured;
  const raw = req.socket.localAddress ?? '127.0.0.1';
  const host = raw.startsWith('::ffff:') ? raw.slice(7) : raw.includes(':') ? `[${raw}]` : raw;
  return `http://${host}:${req.socket.localPort}`;
}
