/**
 * Reserving in a key's budget workflow (workflows/key-budget.ts) through a Temporal client: one
 * Update, Update-with-Start so that a key's first request starts its workflow. Shared by the API
 * (a chat request, before its cascade starts) and the document workflow's activity (each chunk,
 * before its cascade starts). A refusal comes back as a value; other failures throw.
 */
import { WithStartWorkflowOperation, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { RESERVATION_REFUSED, keyBudgetWorkflowId, reserveUpdate, type BudgetKey, type ReserveRefusal, type ReserveRequest } from './budget-messages.js';
import type { keyBudgetWorkflow } from '../workflows/index.js';

export async function reserveInKeyWorkflow(client: Client, taskQueue: string, key: BudgetKey, request: ReserveRequest): Promise<ReserveRefusal | null> {
  try {
    await client.workflow.executeUpdateWithStart(reserveUpdate, {
      args: [request],
      startWorkflowOperation: new WithStartWorkflowOperation<typeof keyBudgetWorkflow>('keyBudgetWorkflow', {
        workflowId: keyBudgetWorkflowId(key.keyId),
        taskQueue,
        args: [{ keyId: key.keyId, limits: key.limits }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        staticSummary: `budget · ${key.keyId} · tier ${key.tier}`,
      }),
    });
    return null;
  } catch (err) {
    const cause = err instanceof WorkflowUpdateFailedError ? err.cause : null;
    if (cause instanceof ApplicationFailure && cause.type === RESERVATION_REFUSED) return cause.details?.[0] as ReserveRefusal;
    throw err;
  }
}
