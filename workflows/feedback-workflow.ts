/**
 * Delayed labels of one policy's requests (POST /v1/cascade/{id}/feedback): an entity workflow per
 * policy that holds the latest label of each request. The cascade workflow is closed by the time
 * a label arrives, and a closed workflow's memo or search attributes cannot change, so the labels
 * live here, keyed by the request's workflow id: a second label for a request replaces the first.
 * `npm run calibrate -- --from-feedback` reads them with the requests' traces.
 */
import { condition, continueAsNew, defineQuery, defineSignal, setHandler, workflowInfo } from '@temporalio/workflow';

export interface Feedback {
  workflow_id: string;
  label: 'good' | 'bad';
  /** In [0, 1]; good = 1 and bad = 0 when the caller gave none. */
  score: number;
  note?: string;
  at: string;
}

export const feedbackSignal = defineSignal<[Feedback]>('feedback');
export const feedbackForQuery = defineQuery<Feedback | null, [string]>('feedbackFor');
export const feedbackAllQuery = defineQuery<Feedback[]>('feedbackAll');

export const feedbackWorkflowId = (taskQueue: string, policy: string): string => `cascade-feedback:${taskQueue}:${policy}`;

/** Labels kept per policy (the oldest go first): bounded, so the state carried over continue-as-new stays small. */
export const FEEDBACK_LIMIT = 2000;

export async function feedbackWorkflow(input: { policy: string; entries?: Feedback[] }): Promise<void> {
  const entries = new Map((input.entries ?? []).map((f) => [f.workflow_id, f] as const));
  setHandler(feedbackSignal, (f) => {
    entries.delete(f.workflow_id); // re-inserted last: the newest label of a request is the one kept
    entries.set(f.workflow_id, f);
    if (entries.size > FEEDBACK_LIMIT) entries.delete(entries.keys().next().value!);
  });
  setHandler(feedbackForQuery, (id) => entries.get(id) ?? null);
  setHandler(feedbackAllQuery, () => [...entries.values()]);
  await condition(() => workflowInfo().continueAsNewSuggested);
  await continueAsNew<typeof feedbackWorkflow>({ policy: input.policy, entries: [...entries.values()] });
}
