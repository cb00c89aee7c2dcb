/**
 * The ledger's source: cascade workflows in Temporal. Closed workflows are listed through
 * visibility (by close time, policy and API key, which are search attributes) and each one's
 * result — or the trace its failure carries — is read from its history. A closed workflow never
 * changes, so what was read is kept in memory (bounded) and a second read costs nothing.
 */
import { WorkflowFailedError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { CascadeResult, CascadeTrace } from '../common/types.js';
import { topModelCostUsd, topModelOf } from '../common/savings.js';
import type { UsageRecord } from '../common/usage.js';
import type { CascadeConfig } from '../config/load.js';
import { SearchAttr } from '../common/names.js';

const STATUS: Record<string, UsageRecord['status']> = {
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'terminated',
  TIMED_OUT: 'timed_out',
};
const CACHE_LIMIT = 100_000;
const READ_CONCURRENCY = 8;

export interface UsageQuery {
  from: Date;
  to: Date;
  keyId?: string;
  policy?: string;
}

export class Ledger {
  private readonly cache = new Map<string, UsageRecord>();

  constructor(
    private readonly client: Client,
    private readonly config: CascadeConfig,
  ) {}

  /** Every cascade workflow that closed in [from, to), optionally of one key or policy. */
  async records(q: UsageQuery): Promise<UsageRecord[]> {
    const clauses = [
      'WorkflowType = "cascadeWorkflow"',
      'ExecutionStatus != "Running"',
      `CloseTime >= "${q.from.toISOString()}"`,
      `CloseTime < "${q.to.toISOString()}"`,
      ...(q.policy ? [`${SearchAttr.Policy.name} = ${JSON.stringify(q.policy)}`] : []),
      ...(q.keyId ? [`${SearchAttr.KeyId.name} = ${JSON.stringify(q.keyId)}`] : []),
    ];
    const found: WorkflowExecutionDescription[] = [];
    for await (const wf of this.client.workflow.list({ query: clauses.join(' AND ') })) found.push(wf as WorkflowExecutionDescription);
    const out: UsageRecord[] = [];
    for (let i = 0; i < found.length; i += READ_CONCURRENCY) {
      const batch = await Promise.all(found.slice(i, i + READ_CONCURRENCY).map((wf) => this.recordOf(wf)));
      out.push(...batch.filter((r): r is UsageRecord => r !== null));
    }
    return out;
  }

  /** One workflow's record; null while it runs (its cost is not final) or when it is not a cascade. */
  async record(workflowId: string): Promise<{ running: true; description: WorkflowExecutionDescription } | UsageRecord | null> {
    const description = (await this.client.workflow.getHandle(workflowId).describe()) as WorkflowExecutionDescription;
    if (description.type !== 'cascadeWorkflow') return null;
    if (description.status.name === 'RUNNING') return { running: true, description };
    return this.recordOf(description);
  }

  private async recordOf(wf: WorkflowExecutionDescription): Promise<UsageRecord | null> {
    const status = STATUS[wf.status.name];
    if (!status) return null;
    const cacheKey = `${wf.workflowId}/${wf.runId}`;
    const cached = this.cache.get(cacheKey);
    if (cached) return cached;
    const { result, trace } = await this.outcome(wf);
    const policy = trace?.policy ?? (wf.typedSearchAttributes.get(SearchAttr.Policy) as string | undefined) ?? 'unknown';
    const record: UsageRecord = {
      workflow_id: wf.workflowId,
      run_id: wf.runId,
      status,
      closed_at: (wf.closeTime ?? new Date()).toISOString(),
      policy,
      key_id: (wf.typedSearchAttributes.get(SearchAttr.KeyId) as string | undefined) ?? null,
      model: result?.model ?? null,
      usage: result?.usage ?? null,
      // A cancelled cascade has no result: what its calls were billed is in its cost attribute (workflows/cascade.ts).
      cost_usd: trace?.cost_usd ?? ((wf.typedSearchAttributes.get(SearchAttr.CostUsd) as number | undefined) || 0),
      top_model_cost_usd: topModelCostUsd(topModelOf(this.config, policy), result?.usage),
      cascade: trace,
    };
    if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(cacheKey, record);
    return record;
  }

  /** The result, or the trace a failed cascade attaches to its failure. */
  private async outcome(wf: WorkflowExecutionDescription): Promise<{ result: CascadeResult | null; trace: CascadeTrace | null }> {
    try {
      const result = (await this.client.workflow.getHandle(wf.workflowId, wf.runId).result()) as CascadeResult;
      return { result, trace: result.cascade };
    } catch (err) {
      const cause = err instanceof WorkflowFailedError ? err.cause : null;
      const trace = cause instanceof ApplicationFailure ? ((cause.details?.[0] as CascadeTrace | undefined) ?? null) : null;
      return { result: null, trace };
    }
  }
}
