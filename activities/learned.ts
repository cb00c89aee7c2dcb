/**
 * The router worker's side of learning from traffic: a cached copy of each policy's stats entity
 * (workflows/learn-workflow.ts), refreshed in the background every `refresh_ms`, so answering a
 * step's question in `route` is a Map lookup and no request waits for an RPC; and the local
 * activity with which an entity reads closed cascades from visibility.
 */
import { WorkflowNotFoundError, type Client, type WorkflowExecutionInfo } from '@temporalio/client';
import type { Logger } from 'pino';
import { SearchAttr } from '../common/names.js';
import { decodeSummary, learnQueryOf, stepDecisions, type LearnQuery, type StepDecision, type TraceSummary } from '../workflows/learn.js';
import type { PolicySpec, RouteDecision } from '../common/types.js';
import { learnedStatsQuery, learnWorkflowId, type LearnSnapshot, type LearnWorkflowInput } from '../workflows/learn-workflow.js';

interface Entry {
  at: number;
  snapshot: LearnSnapshot | null;
  refreshing: boolean;
}

export class LearnedStats {
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly client: Client,
    private readonly taskQueue: string,
    private readonly logger: Logger,
  ) {}

  /**
   * The step's decisions (overall and per pre-router class) from the cached copy; starts a refresh
   * when the copy is older than refresh_ms. The caller picks the class (workflows/learn.ts decisionFor).
   */
  decisions(q: LearnQuery, now = Date.now()): Record<string, StepDecision> | null {
    const id = learnWorkflowId(this.taskQueue, q.policy, q.ladder);
    let entry = this.entries.get(id);
    if (!entry) this.entries.set(id, (entry = { at: 0, snapshot: null, refreshing: false }));
    if (!entry.refreshing && now - entry.at >= q.settings.refresh_ms) {
      entry.refreshing = true;
      void this.refresh(id, q, entry).finally(() => {
        entry.refreshing = false;
        entry.at = Date.now();
      });
    }
    return entry.snapshot ? stepDecisions(entry.snapshot.decisions, q.step) : null;
  }

  /** The first step's decisions for a request about to start (CascadeInput.firstRoute), or nothing to add. */
  firstStep(policy: PolicySpec): Pick<RouteDecision, 'learned'> {
    const q = learnQueryOf(policy, 1);
    const learned = q ? this.decisions(q) : null;
    return learned ? { learned } : {};
  }

  private async refresh(id: string, q: LearnQuery, entry: Entry): Promise<void> {
    try {
      entry.snapshot = await this.client.workflow.getHandle(id).query(learnedStatsQuery);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) {
        this.logger.warn({ policy: q.policy, err: (err as Error).message }, 'learned stats unavailable; not skipping steps');
        return;
      }
      // The first request of this policy (and ladder) on this Temporal namespace starts its entity.
      const input: LearnWorkflowInput = { policy: q.policy, ladder: q.ladder, steps: q.steps, settings: q.settings, taskQueue: this.taskQueue };
      await this.client.workflow
        .start('learnWorkflow', {
          workflowId: id,
          taskQueue: this.taskQueue,
          args: [input],
          workflowIdConflictPolicy: 'USE_EXISTING',
          staticSummary: `learns from traffic · ${q.policy}`,
        })
        .catch((e: Error) => this.logger.warn({ policy: q.policy, err: e.message }, 'could not start the learned-stats workflow'));
    }
  }
}

export interface CollectedOutcome {
  workflowId: string;
  closedAt: string;
  summary: TraceSummary | null;
}

export function createLearnActivities(client: Client) {
  return {
    /** Closed cascades of the policy since `since` that are not in `seen`, oldest first, with their summaries (null: none of this ladder). */
    async collectLearnOutcomes(input: { policy: string; ladder: string; taskQueue: string; since: string; seen: string[] }): Promise<CollectedOutcome[]> {
      const query = [
        'WorkflowType = "cascadeWorkflow"',
        `TaskQueue = ${JSON.stringify(input.taskQueue)}`,
        `${SearchAttr.Policy.name} = ${JSON.stringify(input.policy)}`,
        'ExecutionStatus != "Running"',
        `CloseTime >= "${input.since}"`,
      ].join(' AND ');
      const seen = new Set(input.seen);
      const found: WorkflowExecutionInfo[] = [];
      for await (const wf of client.workflow.list({ query })) {
        if (!seen.has(wf.workflowId)) found.push(wf);
      }
      const out: CollectedOutcome[] = [];
      for (const wf of found) {
        const text = wf.typedSearchAttributes.get(SearchAttr.Learn);
        const summary = typeof text === 'string' ? decodeSummary(text) : null;
        // Listed without a summary of this ladder too, so the entity counts it as seen and moves on.
        out.push({
          workflowId: wf.workflowId,
          closedAt: (wf.closeTime ?? new Date()).toISOString(),
          summary: summary?.ladder === input.ladder ? summary : null,
        });
      }
      return out.sort((a, b) => (a.closedAt < b.closedAt ? -1 : a.closedAt > b.closedAt ? 1 : 0));
    },
  };
}

export type LearnActivities = ReturnType<typeof createLearnActivities>;
