/**
 * What the key budget workflow asks Temporal about a reservation its cascade never settled:
 * whether that cascade ever started, still runs, or closed, and its cost attribute (the number
 * the ledger uses). And a document job's reservation for each chunk, made the way the API makes
 * a chat request's. Local activities on the router worker, with the worker's client.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { SearchAttr } from '../common/names.js';
import type { BudgetKey, ReserveRefusal, ReserveRequest } from '../common/budget-messages.js';
import { reserveInKeyWorkflow } from '../common/budget-reserve.js';
import { budgetLimitsOf, type KeyStore } from '../server/keys.js';

export type CascadeOutcome = { kind: 'not_started' } | { kind: 'running' } | { kind: 'closed'; costUsd: number | null };

/** Why a document chunk cannot reserve: the key's budget or rate limit, or the key is gone. */
export type KeyRefusal = ReserveRefusal | { code: 'key_revoked'; message: string };

/** `keys`: the keys file as it is now (limits edited or a key revoked after a job started apply to its next chunk). */
export function createBudgetActivities(keys?: KeyStore) {
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
    /**
     * Reserves a document chunk's worst-case cost in its key's budget, under the key's limits as
     * they are now; the refusal, or null when granted (or when the key has no limits any more).
     */
    async reserveForKey({ key, request }: { key: BudgetKey; request: ReserveRequest }): Promise<KeyRefusal | null> {
      const current = keys?.byId(key.keyId);
      if (keys && !current) return { code: 'key_revoked', message: `Key ${key.keyId} was revoked or removed from the keys file.` };
      const limits = current ? budgetLimitsOf(current) : key.limits;
      if (!limits) return null;
      const ctx = Context.current();
      return reserveInKeyWorkflow(ctx.client, ctx.info.taskQueue, { ...key, limits }, { ...request, limits });
    },
  };
}

export type BudgetActivities = ReturnType<typeof createBudgetActivities>;
