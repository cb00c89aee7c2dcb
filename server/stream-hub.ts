/**
 * The API's end of the live-answer side channel (common/stream.ts). One session per streaming
 * request, keyed by workflow id, lives while some handler in this process waits for that
 * workflow. Model-call activities POST their deltas here; the session keeps the text of the answer
 * streamed so far and tells its subscribers (the client connections) what is new.
 *
 * The rule that keeps a client from ever seeing repeated or contradictory text: the streamed
 * answer only grows. A live call's text is appended when it extends what was already streamed; a
 * retried or failed-over call that produces the same text again (a replayed recording, a
 * deterministic model) is skipped until it passes the streamed end, then continues it; one that
 * says something else breaks the stream (the client gets an in-band error and no [DONE]).
 * A hedged step's text is held until the workflow promotes it (the other step lost); then what it
 * has produced goes out at once and the rest live.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import { STREAM_TOKEN_HEADER, type StreamKind, type StreamMessage, type StreamReceiver } from '../common/stream.js';

export interface DraftEvent {
  step: number;
  model: string;
  text: string;
}

interface CallState {
  kind: StreamKind;
  step: number;
  model: string;
  text: string;
}

export class StreamSession extends EventEmitter {
  readonly token = randomBytes(18).toString('base64url');
  /** Text of the answer streamed so far (only ever grows). */
  answer = '';
  /** Model of the live call that streamed `answer`. */
  answerModel: string | null = null;
  /** Why the stream can no longer continue, once it cannot. */
  broken: string | null = null;
  private holders = 0;
  /** Calls of hedged steps, running, whose text is held until their step is promoted. */
  private readonly held = new Set<CallState>();
  /** Hedged steps the workflow promoted: the other step lost, so their text is the answer. */
  private readonly promoted = new Set<number>();

  constructor(
    readonly workflowId: string,
    readonly requestHash: string,
    private readonly onIdle: () => void,
  ) {
    super();
    this.setMaxListeners(64);
  }

  acquire(): void {
    this.holders++;
  }

  release(): void {
    if (--this.holders <= 0) this.onIdle();
  }

  /** Applies one call's text (everything it has produced so far) to the answer. */
  liveText(call: CallState): void {
    if (this.broken) return;
    const { text } = call;
    if (text.length <= this.answer.length) {
      if (!this.answer.startsWith(text)) this.break(`step ${call.step} (${call.model}) produced different text than was already streamed`);
      return;
    }
    if (!text.startsWith(this.answer)) {
      this.break(`step ${call.step} (${call.model}) produced different text than was already streamed`);
      return;
    }
    const added = text.slice(this.answer.length);
    this.answer = text;
    this.answerModel = call.model;
    this.emit('answer', added);
  }

  draft(call: CallState, added: string): void {
    this.emit('draft', { step: call.step, model: call.model, text: added } satisfies DraftEvent);
  }

  /** A call of a later step started: every earlier draft was not accepted. */
  stepStarted(step: number, kind: StreamKind): void {
    this.emit('step', step, kind);
  }

  /** A call started: a hedge's text is held until its step wins (one promoted already is live). */
  callStarted(call: CallState): void {
    if (call.kind === 'hedge' && this.promoted.has(call.step)) call.kind = 'live';
    if (call.kind === 'hedge') this.held.add(call);
    else this.stepStarted(call.step, call.kind);
  }

  callEnded(call: CallState): void {
    this.held.delete(call);
  }

  /** The hedge of `step` won: what its running call has produced goes out now, the rest live. */
  promote(step: number): void {
    this.promoted.add(step);
    this.stepStarted(step, 'live');
    for (const call of this.held) {
      if (call.step !== step) continue;
      this.held.delete(call);
      call.kind = 'live';
      this.liveText(call);
    }
  }

  private break(reason: string): void {
    this.broken = reason;
    this.emit('broken', reason);
  }
}

export class StreamHub {
  private readonly sessions = new Map<string, StreamSession>();
  /** Names this hub in stream targets, for calls made in this very process (activities/stream-sink.ts). */
  readonly id = randomBytes(9).toString('base64url');

  constructor(private readonly logger: Logger) {}

  /** The session of a workflow in this process (a reconnect while it runs), or a new one. */
  open(workflowId: string, requestHash: string): StreamSession {
    let session = this.sessions.get(workflowId);
    if (!session) {
      session = new StreamSession(workflowId, requestHash, () => this.sessions.delete(workflowId));
      this.sessions.set(workflowId, session);
    }
    session.acquire();
    return session;
  }

  get size(): number {
    return this.sessions.size;
  }

  /**
   * The receiver of one model call's messages for a workflow's session here, or null when nobody
   * here waits for it (the client left, this process restarted) or the token is wrong.
   */
  receiver(workflowId: string, token: string): StreamReceiver | null {
    const session = this.sessions.get(workflowId);
    const sent = Buffer.from(token);
    const expected = Buffer.from(session?.token ?? '');
    if (!session || sent.length !== expected.length || !timingSafeEqual(sent, expected)) return null;
    let call: CallState | null = null;
    return (m) => {
      if (m.type === 'start') {
        // A continuation's deltas extend the text it was given, which was streamed already.
        call = { kind: m.kind, step: m.step, model: m.model, text: m.prefix ?? '' };
        session.callStarted(call);
      } else if (m.type === 'delta' && call) {
        call.text += m.text;
        if (call.kind === 'live') session.liveText(call);
        else if (call.kind === 'draft') session.draft(call, m.text);
      } else if (m.type === 'end' && call) {
        session.callEnded(call);
      } else if (m.type === 'promote') {
        session.promote(m.step);
      }
    };
  }

  /** POST /internal/streams/:workflowId — NDJSON from one model call. */
  ingest(): RequestHandler {
    return (req, res) => {
      const workflowId = String(req.params.workflowId);
      const apply = this.receiver(workflowId, req.get(STREAM_TOKEN_HEADER) ?? '');
      if (!apply) {
        // The call goes on; its result still reaches the workflow.
        res.status(404).end();
        req.resume();
        return;
      }
      let buffered = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          try {
            apply(JSON.parse(line) as StreamMessage);
          } catch (err) {
            this.logger.warn({ workflow_id: workflowId, err: (err as Error).message }, 'malformed stream message ignored');
          }
        }
      });
      req.on('end', () => res.status(204).end());
    };
  }
}
