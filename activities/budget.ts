/**
 * What the key budget workflow asks Temporal about a reservation its cascade never settled:
 * whether that cascade ever started, still runs, or closed, and its cost attribute (the number
 * the ledger uses). And a document job's reservation for each chunk, made the way the API makes
 * a chat request's. Local activities on the router worker, with the worker's client.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { SearchAttr } from '../common/names.js';
import type { KeyBudgetLimits, KeyRefusal, ReserveRequest } from '../common/budget-messages.js';
import { reserveInKeyWorkflow } from '../common/budget-reserve.js';
import { budgetLimitsOf, type KeyStore } from '../server/keys.js';

export type CascadeOutcome = { kind: 'not_started' } | { kind: 'running' } | { kind: 'closed'; costUsd: number | null };

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
     * the keys file has them now (`limits`, from when the job was submitted, serve only a worker
     * without a keys file). `reserved: false` when the key has no budget or rate limit: nothing to
     * reserve, and the chunk's cascade settles nothing.
     */
    async reserveForKey({
      keyId,
      tier,
      limits: submitted,
      request,
    }: {
      keyId: string;
      tier: string;
      limits?: KeyBudgetLimits;
      request: Omit<ReserveRequest, 'limits'>;
    }): Promise<{ refused: KeyRefusal } | { reserved: boolean }> {
      const current = keys?.byId(keyId);
      if (keys && !current) return { refused: { code: 'key_revoked', message: `Key ${keyId} was revoked or removed from the keys file.` } };
      const limits = current ? budgetLimitsOf(current) : submitted;
      if (!limits) return { reserved: false };
      const ctx = Context.current();
      const refused = await reserveInKeyWorkflow(ctx.client, ctx.info.taskQueue, { keyId, tier, limits }, { ...request, limits });
      return refused ? { refused } : { reserved: true };
    },
  };
}

export type BudgetActivities = ReturnType<typeof createBudgetActivities>;
