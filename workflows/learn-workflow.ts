/**
 * The stats entity of one policy (one per ladder): a long-running workflow that collects what
 * every closed cascade of the policy said about its steps (the CascadeLearn search attribute,
 * written in the cascade's last workflow task), keeps the sliding windows and the skip decisions
 * with their hysteresis (learn.ts), and answers a query that router workers cache. Nothing is
 * added to a request's path: the cascade writes one more search attribute, the entity reads them
 * from visibility on its own schedule. Its state survives any process: it is this workflow's.
 */
import { continueAsNew, defineQuery, proxyLocalActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { LearnSettings } from '../common/types.js';
import type { LearnActivities } from '../activities/learned.js';
import { addSummary, emptyLearnState, type LearnState, type StepDecision } from './learn.js';

export interface LearnWorkflowInput {
  policy: string;
  ladder: string;
  steps: number;
  settings: LearnSettings;
  /** Router task queue: only the cascades of this deployment count (tests share one Temporal server). */
  taskQueue: string;
  /** Carried over continue-as-new. */
  state?: LearnState;
  since?: string;
  seen?: string[];
}

export interface LearnSnapshot {
  policy: string;
  ladder: string;
  processed: number;
  decisions: Record<string, StepDecision>;
  /** The last `window` answered requests: what they cost, and what the top step alone would have. */
  recent: { requests: number; cost_usd: number; top_cost_usd: number };
}

export const learnedStatsQuery = defineQuery<LearnSnapshot>('learnedStats');

export const learnWorkflowId = (taskQueue: string, policy: string, ladder: string): string => `cascade-learn:${taskQueue}:${policy}:${ladder}`;

// One attempt: a failed collection is simply retried by the next poll (nothing is lost, `since` stays).
const { collectLearnOutcomes } = proxyLocalActivities<LearnActivities>({ startToCloseTimeout: '20s', retry: { maximumAttempts: 1 } });

/** A cascade may become visible a little after a later one: re-read this much before the newest seen. */
const OVERLAP_MS = 5000;
/** When nothing new arrives, poll less often, up to this. */
const MAX_IDLE_MS = 30_000;
/**
 * A run that has not yet seen min_samples requests keeps polling every refresh_ms for this many
 * polls instead of backing off: it was started by traffic, which is most likely still arriving, and
 * every request that runs before the first decision may pay for an unprofitable step.
 */
const LEARNING_POLLS = 100;
const POLLS_PER_RUN = 500;

export async function learnWorkflow(input: LearnWorkflowInput): Promise<void> {
  const { settings } = input;
  const state = input.state ?? emptyLearnState(input.ladder, input.steps);
  // The first run also counts the requests that started it (they close just before or after).
  let since = input.since ?? new Date(Date.now() - 60_000).toISOString();
  let seen = new Map((input.seen ?? []).map((id) => [id, since] as const));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

  const snapshot = (): LearnSnapshot => ({
    policy: input.policy,
    ladder: state.ladder,
    processed: state.processed,
    decisions: state.decisions,
    recent: { requests: state.recent.cost.length, cost_usd: sum(state.recent.cost), top_cost_usd: sum(state.recent.top) },
  });
  setHandler(learnedStatsQuery, snapshot);

  let idleMs = settings.refresh_ms;
  for (let poll = 0; poll < POLLS_PER_RUN && !workflowInfo().continueAsNewSuggested; poll++) {
    const found = await collectLearnOutcomes({ policy: input.policy, ladder: input.ladder, taskQueue: input.taskQueue, since, seen: [...seen.keys()] }).catch(
      () => [],
    );
    for (const o of found) {
      seen.set(o.workflowId, o.closedAt);
      if (o.summary) addSummary(state, o.summary, settings);
    }
    if (found.length > 0) {
      const newest = found.reduce((m, o) => (o.closedAt > m ? o.closedAt : m), since);
      since = new Date(Math.max(Date.parse(since), Date.parse(newest) - OVERLAP_MS)).toISOString();
      seen = new Map([...seen].filter(([, closedAt]) => closedAt >= since));
    }
    const learning = state.processed < settings.min_samples && poll < LEARNING_POLLS;
    idleMs = found.length > 0 || learning ? settings.refresh_ms : Math.min(MAX_IDLE_MS, idleMs * 2);
    await sleep(idleMs);
  }
  await continueAsNew<typeof learnWorkflow>({ ...input, state, since, seen: [...seen.keys()] });
}
