/**
 * Starting a chat workflow, or joining the one an Idempotency-Key already names, and turning its
 * outcome into a result or an ApiError. Shared by the JSON and the streaming responses.
 */
import { WorkflowFailedError, WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import { SearchAttr } from '../common/names.js';
import { ErrorType } from '../common/errors.js';
import type { CascadeInput, CascadeResult, CascadeTrace, ModelInfo, RouteDecision } from '../common/types.js';
import type { cascadeWorkflow } from '../workflows/index.js';
import type { CascadeConfig } from '../config/load.js';
import { ApiError, fromWorkflowError } from './errors.js';

export type ChatHandle = WorkflowHandle<typeof cascadeWorkflow>;

/** Where chat workflows start: the API's client, the router task queue, and how. */
export interface ChatStarter {
  client: Client;
  taskQueue: string;
  /**
   * A router worker runs in this process on the client's connection (`temporal.embedded_router`):
   * the start response carries the workflow's first task to it (eager start), saving the
   * server's dispatch of that task to a polling worker.
   */
  eager: boolean;
  /** That router worker's routing state: the first step's decision travels with the start. */
  route?: (model: ModelInfo, input: CascadeInput) => RouteDecision;
}

export function chatStarter(client: Client, config: CascadeConfig, embedded?: { route: ChatStarter['route'] }): ChatStarter {
  return { client, taskQueue: config.raw.temporal.task_queue, eager: embedded !== undefined, ...embedded };
}

/** The input with the first step's routing decision, when this process can make it. */
function withFirstRoute(input: CascadeInput, route: ChatStarter['route']): CascadeInput {
  const first = input.policy.steps[0] && input.models[input.policy.steps[0].model];
  return route && first ? { ...input, firstRoute: { model: first.name, route: route(first, input) } } : input;
}

/**
 * `keyId` (the caller's hashed API key) lets the usage ledger (server/ledger.ts) total per key.
 * `joined` is true when the Idempotency-Key named a workflow that an earlier request had started
 * (running or finished): that request's calls and cost were counted with it, not again here.
 */
export async function startOrAttach(
  { client, taskQueue, eager, route }: ChatStarter,
  workflowId: string,
  input: CascadeInput,
  deadlineMs: number,
  keyId?: string,
): Promise<{ handle: ChatHandle; joined: boolean }> {
  try {
    const handle = await client.workflow.start<typeof cascadeWorkflow>('cascadeWorkflow', {
      taskQueue,
      // The server hands the first workflow task back in the start response when it can; it
      // falls back to the task queue by itself (e.g. no free slot in the local worker).
      requestEagerStart: eager,
      workflowId,
      args: [withFirstRoute(input, route)],
      // A request still running with the same key is joined, a finished one is not run again
      // (both refuse the start, so this request knows it joined: below).
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      // Safety net only: the workflow enforces the deadline itself and ends with a clean error.
      workflowExecutionTimeout: deadlineMs + 30_000,
      // A workflow task takes milliseconds; when the router worker running it dies, another one
      // takes it over after this long (Temporal's default, 10 s, stalled such requests for 10 s).
      workflowTaskTimeout: '5s',
      typedSearchAttributes: [{ key: SearchAttr.Policy, value: input.policy.name }, ...(keyId ? [{ key: SearchAttr.KeyId, value: keyId }] : [])],
      staticSummary: `chat · ${input.policy.name} · ${input.policy.steps.map((s) => s.model).join(' → ')}`,
    });
    return { handle, joined: false };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { handle: client.workflow.getHandle(workflowId), joined: true };
    throw err;
  }
}

export async function awaitResult(handle: ChatHandle): Promise<CascadeResult> {
  try {
    return await handle.result();
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const cause = err.cause;
    if (cause instanceof ApplicationFailure)
      throw fromWorkflowError(cause.type ?? ErrorType.AllDeploymentsFailed, cause.message, cause.details?.[0] as CascadeTrace | undefined);
    if (cause instanceof TimeoutFailure) throw fromWorkflowError(ErrorType.DeadlineExceeded, 'The request did not finish before its deadline');
    if (cause instanceof CancelledFailure || cause instanceof TerminatedFailure)
      throw new ApiError(499, 'The request was cancelled', 'invalid_request_error', 'request_cancelled');
    throw fromWorkflowError(ErrorType.AllDeploymentsFailed, cause?.message ?? err.message);
  }
}
