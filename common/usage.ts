/**
 * The usage ledger's records and totals. A record is one cascade workflow as Temporal keeps it
 * (its result, or the trace its failure carries), so the ledger is derived from durable state:
 * it survives any crash, and a workflow read twice is still one record (records are keyed by
 * workflow and run id). Pure.
 */
import type { CascadeTrace, Usage } from './types.js';

export interface UsageRecord {
  workflow_id: string;
  run_id: string;
  status: 'completed' | 'failed' | 'cancelled' | 'terminated' | 'timed_out';
  closed_at: string;
  policy: string;
  /** Which API key asked (`key_<sha256 prefix>`), when keys are configured. */
  key_id: string | null;
  model: string | null;
  usage: Usage | null;
  /** Every billed call: answers, failed-but-billed attempts, samples, judges. */
  cost_usd: number;
  /** The same request on the policy's top model (answered requests only). */
  top_model_cost_usd: number | null;
  /** null when the workflow ended without a trace (cancelled or terminated before it could report one). */
  cascade: CascadeTrace | null;
}

export interface UsageTotals {
  requests: number;
  answered: number;
  failed: number;
  calls: number;
  cost_usd: number;
  /** For the answered requests: their cost on the top model, and what the cascade saved against it. */
  top_model_cost_usd: number;
  answered_cost_usd: number;
  savings_usd: number;
  escalations: number;
  escalation_rate: number;
}

export function totals(records: readonly UsageRecord[]): UsageTotals {
  const answered = records.filter((r) => r.top_model_cost_usd !== null);
  const cost = sum(records.map((r) => r.cost_usd));
  const answeredCost = sum(answered.map((r) => r.cost_usd));
  const top = sum(answered.map((r) => r.top_model_cost_usd!));
  const escalated = records.filter((r) => (r.cascade?.escalations ?? 0) > 0).length;
  return {
    requests: records.length,
    answered: answered.length,
    failed: records.filter((r) => r.status !== 'completed').length,
    calls: sum(records.map((r) => r.cascade?.attempts.filter((a) => a.deployment !== null).length ?? 0)),
    cost_usd: round(cost),
    top_model_cost_usd: round(top),
    answered_cost_usd: round(answeredCost),
    savings_usd: round(top - answeredCost),
    escalations: sum(records.map((r) => r.cascade?.escalations ?? 0)),
    escalation_rate: records.length ? round(escalated / records.length, 4) : 0,
  };
}

/** Totals per value of a field (policy, key). */
export function totalsBy(records: readonly UsageRecord[], field: 'policy' | 'key_id'): Record<string, UsageTotals> {
  const groups = new Map<string, UsageRecord[]>();
  for (const r of records) {
    const k = r[field] ?? '(none)';
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return Object.fromEntries([...groups].sort(([a], [b]) => a.localeCompare(b)).map(([k, rs]) => [k, totals(rs)]));
}

const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
const round = (x: number, digits = 8) => Number(x.toFixed(digits));
