/**
 * Where the durable path's time goes, from the Temporal history of individual requests: the event
 * times split one request into client → start, workflow-task dispatch and run (local activities
 * included), activity dispatch to the pool's queue, the model call itself, the second workflow
 * task (evaluation, completion) and completion → client. With local dispatch a request is one
 * workflow task (the model call and its evaluation are local activities in it): the activity and
 * second-task segments are then 0. Same host, so the client's clock and the server's event times
 * are comparable to well under a millisecond.
 */
import type { Client } from '@temporalio/client';
import { percentile } from '../../evaluators/train/stats.js';
import type { Sample } from './overhead-load.js';

/** The segments, in the order they happen. */
export const SEGMENTS = {
  client_to_started: 'HTTP request → API → StartWorkflowExecution (WorkflowExecutionStarted)',
  wft1_dispatch: 'first workflow task: scheduled → picked up by the router worker',
  wft1_run: 'first workflow task: run (local activities: with local dispatch the model call and its evaluation) → completed',
  activity_dispatch: 'pool activity: scheduled → picked up by the pool worker',
  activity_run: 'pool activity: started → completed (the model call + result upload)',
  wft2_dispatch: 'second workflow task: scheduled → picked up (sticky queue)',
  wft2_run: 'second workflow task: run (evaluate local activity, complete)',
  later_wfts: 'any further workflow tasks (dispatch + run)',
  completed_to_client: 'WorkflowExecutionCompleted → result long-poll → HTTP response received',
} as const;
export type Segment = keyof typeof SEGMENTS;

type Ts = { seconds?: number | { toNumber(): number } | null; nanos?: number | null } | null | undefined;
type Event = {
  eventTime?: Ts;
  workflowExecutionStartedEventAttributes?: unknown;
  workflowExecutionCompletedEventAttributes?: unknown;
  workflowTaskScheduledEventAttributes?: unknown;
  workflowTaskStartedEventAttributes?: unknown;
  workflowTaskCompletedEventAttributes?: unknown;
  activityTaskScheduledEventAttributes?: unknown;
  activityTaskStartedEventAttributes?: unknown;
  activityTaskCompletedEventAttributes?: unknown;
};

const ms = (ts: Ts): number => {
  if (!ts) return NaN;
  const s = ts.seconds == null ? 0 : typeof ts.seconds === 'number' ? ts.seconds : ts.seconds.toNumber();
  return s * 1000 + (ts.nanos ?? 0) / 1e6;
};

export type Breakdown = Record<Segment, number>;

/** One request's segments (ms), or null when its history is not the one-activity shape. */
export function breakdown(events: Event[], sample: Sample): Breakdown | null {
  const at = (key: keyof Event) => events.filter((e) => e[key] !== undefined && e[key] !== null).map((e) => ms(e.eventTime));
  const started = at('workflowExecutionStartedEventAttributes')[0];
  const completed = at('workflowExecutionCompletedEventAttributes')[0];
  const wftScheduled = at('workflowTaskScheduledEventAttributes');
  const wftStarted = at('workflowTaskStartedEventAttributes');
  const wftCompleted = at('workflowTaskCompletedEventAttributes');
  const actScheduled = at('activityTaskScheduledEventAttributes');
  const actStarted = at('activityTaskStartedEventAttributes');
  const actCompleted = at('activityTaskCompletedEventAttributes');
  if (started === undefined || completed === undefined) return null;
  // One pool activity between two workflow tasks (task-queue dispatch), or no activity at all (local).
  const activities = actScheduled.length;
  if (activities > 1 || actStarted.length !== activities || actCompleted.length !== activities) return null;
  const wfts = activities === 1 ? 2 : 1;
  if (wftCompleted.length < wfts || wftStarted.length < wftCompleted.length || wftScheduled.length < wftCompleted.length) return null;
  let later = 0;
  for (let i = wfts; i < wftCompleted.length; i++) later += wftCompleted[i]! - wftScheduled[i]!;
  const span = (from: number[], to: number[], i: number) => (i < to.length ? to[i]! - from[i]! : 0);
  return {
    client_to_started: started - sample.sentAt,
    wft1_dispatch: wftStarted[0]! - wftScheduled[0]!,
    wft1_run: wftCompleted[0]! - wftStarted[0]!,
    activity_dispatch: span(actScheduled, actStarted, 0),
    activity_run: span(actStarted, actCompleted, 0),
    wft2_dispatch: wfts === 2 ? wftStarted[1]! - wftScheduled[1]! : 0,
    wft2_run: wfts === 2 ? wftCompleted[1]! - wftStarted[1]! : 0,
    later_wfts: later,
    completed_to_client: sample.receivedAt - completed,
  };
}

export interface SegmentStats {
  segment: Segment;
  what: string;
  p50: number;
  p95: number;
  mean: number;
}

/** Fetches the histories of up to `limit` answered requests and summarises every segment. */
export async function profileRequests(client: Client, samples: Sample[], limit: number): Promise<{ n: number; segments: SegmentStats[] }> {
  const picked = samples.filter((s) => s.error === null && s.workflowId).slice(-limit);
  const rows: Breakdown[] = [];
  for (const sample of picked) {
    const history = await client.workflow.getHandle(sample.workflowId!).fetchHistory();
    const row = breakdown((history.events ?? []) as Event[], sample);
    if (row) rows.push(row);
  }
  const segments = (Object.keys(SEGMENTS) as Segment[]).map((segment) => {
    const values = rows.map((r) => r[segment]).sort((a, b) => a - b);
    return {
      segment,
      what: SEGMENTS[segment],
      p50: percentile(values, 0.5),
      p95: percentile(values, 0.95),
      mean: values.reduce((a, b) => a + b, 0) / Math.max(1, values.length),
    };
  });
  return { n: rows.length, segments };
}
