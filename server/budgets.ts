/**
 * Per-key budgets and rate limits at the API: before a cascade starts, its worst-case cost is
 * reserved in the key's budget workflow (workflows/key-budget.ts) with one Update — atomic across
 * every API process, since Temporal runs one message at a time per workflow. The cascade settles
 * the reservation with its real cost when it ends (workflows/cascade.ts), so a dead API process
 * leaks nothing. A refused reservation is a 402 (budget) or a 429 with Retry-After (rate).
 */
import { WithStartWorkflowOperation, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { RequestHandler } from 'express';
import type { CascadeConfig, Target } from '../config/load.js';
import { resolveTarget } from '../config/load.js';
import type { CascadeInput } from '../common/types.js';
import { RESERVATION_REFUSED, keyBudgetWorkflowId, reserveUpdate, statusQuery, type KeyBudgetLimits, type ReserveRefusal } from '../common/budget-messages.js';
import { estimatedTokens, worstCaseCostUsd } from '../workflows/budget.js';
import type { keyBudgetWorkflow } from '../workflows/index.js';
import { ApiError } from './errors.js';
import { callerKey } from './auth.js';
import type { CallerKey } from './keys.js';

/** A reservation not settled this long after the request's deadline is checked against Temporal. */
const RESERVATION_GRACE_MS = 60_000;

export class Budgets {
  constructor(
    private readonly client: Client,
    private readonly config: CascadeConfig,
  ) {}

  /** What `model` runs for this key: `cascade` is the key's default policy, and the key may be limited to some. */
  target(key: CallerKey | undefined, model: string): Target | null {
    const requested = model === 'cascade' && key?.limits.default_policy ? `cascade:${key.limits.default_policy}` : model;
    const target = resolveTarget(this.config, requested);
    const allow = key?.limits.allow;
    if (!target || !key || !allow) return target;
    const name = target.policy.name;
    if (name === key.limits.default_policy || allow.some((entry) => resolveTarget(this.config, entry)?.policy.name === name)) return target;
    throw new ApiError(
      403,
      `This key (tier ${key.tier}) may not use '${model}'. Allowed: cascade${key.limits.default_policy ? ` (= cascade:${key.limits.default_policy})` : ''}, ${allow.join(', ')}.`,
      'invalid_request_error',
      'model_not_allowed',
      'model',
    );
  }

  /**
   * Reserves the request's worst-case cost for its key; returns where the cascade settles it, or
   * undefined when the key has no budget or rate limit (nothing to enforce, no round trip).
   */
  async reserve(key: CallerKey | undefined, workflowId: string, input: CascadeInput): Promise<CascadeInput['budget']> {
    const limits = key && budgetLimits(key);
    if (!key || !limits) return undefined;
    const keyWorkflowId = keyBudgetWorkflowId(key.id);
    const request = {
      id: workflowId,
      usd: worstCaseCostUsd(input),
      tokens: estimatedTokens(input),
      ttlMs: (input.deadlineMs ?? input.policy.deadline_ms) + RESERVATION_GRACE_MS,
      limits,
    };
    try {
      await this.client.workflow.executeUpdateWithStart(reserveUpdate, {
        args: [request],
        startWorkflowOperation: new WithStartWorkflowOperation<typeof keyBudgetWorkflow>('keyBudgetWorkflow', {
          workflowId: keyWorkflowId,
          taskQueue: this.config.raw.temporal.task_queue,
          args: [{ keyId: key.id, limits }],
          workflowIdConflictPolicy: 'USE_EXISTING',
          staticSummary: `budget · ${key.id} · tier ${key.tier}`,
        }),
      });
    } catch (err) {
      const cause = err instanceof WorkflowUpdateFailedError ? err.cause : null;
      if (cause instanceof ApplicationFailure && cause.type === RESERVATION_REFUSED) throw refusedError(cause.details?.[0] as ReserveRefusal);
      throw err;
    }
    return { keyWorkflowId };
  }

  /** GET /v1/budget: the caller's key, its limits, and what it spent and holds in flight. */
  statusRoute(): RequestHandler {
    return async (_req, res) => {
      const key = callerKey(res.locals);
      if (!key) throw new ApiError(404, 'No API keys are configured: there is no budget to show', 'invalid_request_error', 'no_api_key');
      const limits = budgetLimits(key);
      let status = null;
      if (limits) {
        try {
          status = await this.client.workflow.getHandle(keyBudgetWorkflowId(key.id)).query(statusQuery);
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
      }
      res.json({ object: 'cascade.budget', key_id: key.id, name: key.name, tier: key.tier, limits: key.limits, usage: status });
    };
  }
}

/** The key's limits as the budget workflow applies them; null when it has none. */
function budgetLimits(key: CallerKey): KeyBudgetLimits | null {
  const { budget_usd: b, rate_limit: r } = key.limits;
  const limits: KeyBudgetLimits = {
    ...(b?.day !== undefined && { dayUsd: b.day }),
    ...(b?.month !== undefined && { monthUsd: b.month }),
    ...(r?.requests_per_minute !== undefined && { requestsPerMinute: r.requests_per_minute }),
    ...(r?.tokens_per_minute !== undefined && { tokensPerMinute: r.tokens_per_minute }),
  };
  return Object.keys(limits).length > 0 ? limits : null;
}

function refusedError(refusal: ReserveRefusal): ApiError {
  if (refusal.code === 'budget_exceeded') return new ApiError(402, refusal.message, 'insufficient_quota', 'budget_exceeded');
  const err = new ApiError(429, refusal.message, refusal.kind, 'rate_limit_exceeded');
  err.retryAfterS = refusal.retryAfterS;
  return err;
}
