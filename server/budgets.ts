/**
 * Per-key budgets and rate limits at the API: before a cascade starts, its worst-case cost is
 * reserved in the key's budget workflow (workflows/key-budget.ts) with one Update — atomic across
 * every API process, since Temporal runs one message at a time per workflow. The cascade settles
 * the reservation with its real cost when it ends (workflows/cascade.ts), so a dead API process
 * leaks nothing. A refused reservation is a 402 (budget) or a 429 with Retry-After (rate).
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { RequestHandler } from 'express';
import type { CascadeConfig, Target } from '../config/load.js';
import { resolveTarget } from '../config/load.js';
import type { CascadeInput } from '../common/types.js';
import { RESERVATION_GRACE_MS, keyBudgetWorkflowId, statusQuery, type BudgetKey, type ReserveRefusal } from '../common/budget-messages.js';
import { reserveInKeyWorkflow } from '../common/budget-reserve.js';
import { estimatedTokens, worstCaseCostUsd } from '../workflows/budget.js';
import { ApiError } from './errors.js';
import { callerKey } from './auth.js';
import { budgetLimitsOf, type CallerKey } from './keys.js';

export class Budgets {
  constructor(
    private readonly client: Client,
    private readonly config: CascadeConfig,
  ) {}

  /**
   * What `model` runs for this key: `cascade` is the key's default policy, and the key may be
   * limited to some. A document job's `cascade` is its task's policy when the key may use it, else
   * the key's default policy.
   */
  target(key: CallerKey | undefined, model: string, task?: Parameters<typeof resolveTarget>[2]): Target | null {
    if (task && model === 'cascade') {
      const forTask = resolveTarget(this.config, model, task);
      if (forTask && allows(key, forTask, this.config)) return forTask;
    }
    const requested = model === 'cascade' && key?.limits.default_policy ? `cascade:${key.limits.default_policy}` : model;
    const target = resolveTarget(this.config, requested, task);
    if (!target || !key || allows(key, target, this.config)) return target;
    const allow = key.limits.allow ?? [];
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
    const limits = key && budgetLimitsOf(key);
    if (!key || !limits) return undefined;
    const keyWorkflowId = keyBudgetWorkflowId(key.id);
    const request = {
      id: workflowId,
      usd: worstCaseCostUsd(input),
      tokens: estimatedTokens(input),
      ttlMs: (input.deadlineMs ?? input.policy.deadline_ms) + RESERVATION_GRACE_MS,
      limits,
    };
    const refused = await reserveInKeyWorkflow(this.client, this.config.raw.temporal.task_queue, { keyId: key.id, tier: key.tier, limits }, request);
    if (refused) throw refusedError(refused);
    return { keyWorkflowId };
  }

  /** The key as a document job carries it, to reserve each chunk itself; undefined when it has no budget or rate limit. */
  budgetKey(key: CallerKey | undefined): BudgetKey | undefined {
    const limits = key && budgetLimitsOf(key);
    return key && limits ? { keyId: key.id, tier: key.tier, limits } : undefined;
  }

  /** GET /v1/budget: the caller's key, its limits, and what it spent and holds in flight. */
  statusRoute(): RequestHandler {
    return async (_req, res) => {
      const key = callerKey(res.locals);
      if (!key) throw new ApiError(404, 'No API keys are configured: there is no budget to show', 'invalid_request_error', 'no_api_key');
      const limits = budgetLimitsOf(key);
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

/** Whether the key's tier lets it run `target` (no key or no allow list: everything). */
function allows(key: CallerKey | undefined, target: Target, config: CascadeConfig): boolean {
  const allow = key?.limits.allow;
  if (!key || !allow) return true;
  const name = target.policy.name;
  return name === key.limits.default_policy || allow.some((entry) => resolveTarget(config, entry)?.policy.name === name);
}

function refusedError(refusal: ReserveRefusal): ApiError {
  if (refusal.code === 'budget_exceeded') return new ApiError(402, refusal.message, 'insufficient_quota', 'budget_exceeded');
  const err = new ApiError(429, refusal.message, refusal.kind, 'rate_limit_exceeded');
  err.retryAfterS = refusal.retryAfterS;
  return err;
}
