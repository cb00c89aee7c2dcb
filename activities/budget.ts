/**
 * What the key budget workflow asks Temporal about a reservation its cascade never settled:
 * whether that cascade ever started, still runs, or closed, and its cost attribute (the number
 * the ledger uses). Runs as a local activity on the router worker, with the worker's client.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { SearchAttr } from '../common/names.js';

export type CascadeOutcome = { kind: 'not_started' } | { kind: 'running' } | { kind: 'closed'; costUsd: number | null };

export function createBudgetActivities() {
  return {
    async cascadeOutcome({ workflowId, reservedAt }: { workflowId: string; reservedAt: number }): Promise<CascadeOutcome> {
      let description;
      try {
        description = await Context.current().client.workflow.getHandle(workflowId).describe();
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return { kind: 'not_started' };
        throw err;
      }
      if (description.status.name === 'RUNNING') return { kind: 'running' };
      // Closed before this reservation was made: a retried request joined a finished cascade, which settled its own cost then.
      if (description.closeTime && description.closeTime.getTime() < reservedAt) return { kind: 'not_started' };
      const cost = description.typedSearchAttributes.get(SearchAttr.CostUsd);
      return { kind: 'closed', costUsd: typeof cost === 'number' ? cost : null };
    },
  };
}

export type BudgetActivities = ReturnType<typeof createBudgetActivities>;
