/**
 * The smallest durable request Temporal can run with Cascade's shape: one workflow task, one
 * activity on another task queue (served by another process), one more workflow task. The
 * overhead benchmark measures it in the same run as the cascade, so the report can separate what
 * Temporal itself costs on this machine from what Cascade adds on top.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { FloorActivities } from './worker.js';

export async function floorWorkflow(activityTaskQueue: string, text: string): Promise<string> {
  const { echo } = proxyActivities<FloorActivities>({ taskQueue: activityTaskQueue, startToCloseTimeout: '30s' });
  return await echo(text);
}
