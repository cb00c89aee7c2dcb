/**
 * The live-answer side channel: while a model call runs, the activity that makes it sends the
 * upstream's deltas straight to the API process holding the client's connection, as NDJSON over
 * one HTTP request per call (POST {url}/internal/streams/{workflowId}), or in memory when the call runs in that API process itself. Tokens never travel
 * through Temporal; the durable answer is still the workflow's result, and the API checks that
 * what it streamed is a prefix of it. Pure types and names (imported by workflow code).
 */

/**
 * How a call's text may be shown: `live` is the answer (no evaluation follows), `draft` is opt-in,
 * `hedge` would be the answer but runs as a hedge that may still lose: the API holds its text until
 * the workflow says the other step lost (`promote`), then shows it and the rest live.
 */
export type StreamKind = 'live' | 'draft' | 'hedge';

/** Where a request's calls send their deltas; set by the API for `stream: true` requests. */
export interface StreamTarget {
  /** Base URL of the API process that holds the client's connection. */
  url: string;
  /** Per-request secret the API checks (the callback is otherwise unauthenticated). */
  token: string;
  /** The client asked for drafts (`cascade.stream_drafts`). */
  drafts: boolean;
  /**
   * Id of the API process's hub: a local activity running in that same process (an embedded
   * router with `dispatch: local`) hands its deltas over in memory instead of over HTTP.
   */
  hub?: string;
}

/** Applies one call's messages to the session waiting for them (server/stream-hub.ts). */
export type StreamReceiver = (message: StreamMessage) => void;

/** What one model call's activity sends, one JSON object per line. */
export type StreamMessage =
  /** `prefix`: the call continues this text (assistant-prefix continuation); its deltas follow it. */
  | { type: 'start'; call: string; step: number; model: string; kind: StreamKind; attempt: number; prefix?: string }
  | { type: 'delta'; text: string }
  | { type: 'end'; outcome: 'ok' | 'failed' | 'aborted' | 'cancelled'; reason?: string }
  /** From the workflow (its own request): the hedge of `step` is the answer now. */
  | { type: 'promote'; step: number };

export const STREAM_PATH = '/internal/streams';
export const STREAM_TOKEN_HEADER = 'x-cascade-stream-token';
