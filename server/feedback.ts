/** The API's access to the per-policy label store (workflows/feedback-workflow.ts). */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { feedbackAllQuery, feedbackForQuery, feedbackSignal, feedbackWorkflowId, type Feedback } from '../workflows/feedback-workflow.js';

export class FeedbackStore {
  constructor(
    private readonly client: Client,
    private readonly taskQueue: string,
  ) {}

  /** Stores (or replaces) a request's label; durable once this returns (a signal in the entity's history). */
  async set(policy: string, feedback: Feedback): Promise<void> {
    await this.client.workflow.signalWithStart('feedbackWorkflow', {
      workflowId: feedbackWorkflowId(this.taskQueue, policy),
      taskQueue: this.taskQueue,
      args: [{ policy }],
      signal: feedbackSignal,
      signalArgs: [feedback],
      staticSummary: `delayed labels · ${policy}`,
    });
  }

  async get(policy: string, workflowId: string): Promise<Feedback | null> {
    return this.ask(policy, (h) => h.query(feedbackForQuery, workflowId), null);
  }

  async all(policy: string): Promise<Feedback[]> {
    return this.ask(policy, (h) => h.query(feedbackAllQuery), []);
  }

  private async ask<T>(policy: string, fn: (h: ReturnType<Client['workflow']['getHandle']>) => Promise<T>, none: T): Promise<T> {
    try {
      return await fn(this.client.workflow.getHandle(feedbackWorkflowId(this.taskQueue, policy)));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return none; // no label for this policy yet
      throw err;
    }
  }
}
