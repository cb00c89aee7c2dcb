/**
 * Pure policy math: what a step would cost, whether it fits the request's deadline, budget and
 * context, whether an answer is accepted, and the timeouts of one attempt. No Temporal, no I/O:
 * unit-tested directly and shared by the workflow and the offline routing benchmark.
 */
import type { ChatParams, DeploymentRef, EarlyAbortOptions, HedgeSpec, ModelInfo, PolicyStep, RetrySettings, Usage } from '../common/types.js';

/** Characters ÷ 4, plus a few tokens of chat framing per message: the estimate used before a call. */
export function estimatePromptTokens(params: Pick<ChatParams, 'messages'>): number {
  let chars = 0;
  for (const m of params.messages) chars += m.content.length;
  return Math.ceil(chars / 4) + 4 * params.messages.length;
}

/**
 * Money in the trace is rounded to 1e-10 $ (far below any token's price) where it is made and
 * where it is summed, so no float noise (0.00026327999999999996) reaches a response, log or UI.
 */
export const roundUsd = (usd: number): number => Math.round(usd * 1e10) / 1e10;

export function costUsd(model: Pick<ModelInfo, 'inputUsdPer1M' | 'outputUsdPer1M'>, inputTokens: number, outputTokens: number): number {
  return roundUsd((inputTokens * model.inputUsdPer1M + outputTokens * model.outputUsdPer1M) / 1e6);
}

export function costOfUsage(model: Pick<ModelInfo, 'inputUsdPer1M' | 'outputUsdPer1M'>, usage: Usage): number {
  return costUsd(model, usage.prompt_tokens, usage.completion_tokens);
}

export type Feasibility = { ok: true } | { ok: false; reason: 'context_length' | 'deadline' | 'budget'; detail: string };

export interface FeasibilityInput {
  model: ModelInfo;
  promptTokens: number;
  maxTokens: number | undefined;
  remainingMs: number;
  /** Measured P50 latency of the model when known; the configured one otherwise. */
  measuredP50Ms: number | null;
  spentUsd: number;
  maxCostUsd: number;
  /** Extra model calls the step's evaluator makes (self-consistency samples, judge). */
  extraCalls: number;
  /** How long a call is expected to wait for a worker slot of the pool it goes to first (0: none). */
  backlogMs?: number;
}

/** A deployment's context window: its own when configured, else the model's. */
export function deploymentWindow(model: Pick<ModelInfo, 'contextWindow'>, deployment: Pick<DeploymentRef, 'contextWindow'>): number {
  return deployment.contextWindow ?? model.contextWindow;
}

/** The largest window any deployment of the model offers: what decides whether the step can run at all. */
export function modelWindow(model: Pick<ModelInfo, 'contextWindow' | 'deployments'>): number {
  return Math.max(...model.deployments.map((d) => deploymentWindow(model, d)));
}

/** Estimated tokens a call needs in the window: the prompt plus the room asked for the answer. */
export function tokensNeeded(params: Pick<ChatParams, 'messages' | 'max_tokens'>): number {
  return estimatePromptTokens(params) + (params.max_tokens ?? 0);
}

/** Whether a step can run at all before spending anything on it. */
export function stepFeasibility(f: FeasibilityInput): Feasibility {
  const { model } = f;
  const needed = f.promptTokens + (f.maxTokens ?? 0);
  const window = modelWindow(model);
  if (needed > window) {
    return { ok: false, reason: 'context_length', detail: `~${needed} tokens exceed ${model.name}'s context window of ${window}` };
  }
  const latency = f.measuredP50Ms ?? model.p50LatencyMs;
  const backlog = f.backlogMs ?? 0;
  if (latency + backlog > f.remainingMs) {
    const waiting = backlog > 0 ? ` (+${Math.round(backlog)} ms waiting for its pool)` : '';
    return {
      ok: false,
      reason: 'deadline',
      detail: `${model.name} typically needs ${Math.round(latency)} ms${waiting}, ${Math.max(0, Math.round(f.remainingMs))} ms left`,
    };
  }
  const outputTokens = Math.min(f.maxTokens ?? model.expectedOutputTokens, model.expectedOutputTokens);
  const estimate = costUsd(model, f.promptTokens, outputTokens) * (1 + f.extraCalls);
  if (f.spentUsd + estimate > f.maxCostUsd) {
    return {
      ok: false,
      reason: 'budget',
      detail: `${model.name} would cost ~$${estimate.toPrecision(3)}, $${Math.max(0, f.maxCostUsd - f.spentUsd).toPrecision(3)} left`,
    };
  }
  return { ok: true };
}

export function accepts(confidence: number, threshold: number): boolean {
  return confidence >= threshold;
}

/** A rejected context-length error on one model also rules out every later model with no larger window. */
export function fitsAfterContextError(failedWindow: number, candidate: ModelInfo): boolean {
  return modelWindow(candidate) > failedWindow;
}

/**
 * Whether a deployment of the same model is still worth asking after others refused the prompt
 * as too long (`refusedWindow` is the largest window that refused, 0 when none did) and given the
 * estimated size. Another deployment with an equal window is still tried: a server's real limit
 * is its own setting (e.g. vLLM's --max-model-len), which the config may not know; only a window
 * known to be smaller is skipped.
 */
export function deploymentFits(window: number, neededTokens: number, refusedWindow: number): boolean {
  return window >= neededTokens && window >= refusedWindow;
}

/** The first-token limit of one attempt is never below this, even when failovers spent the budget. */
export const MIN_FIRST_TOKEN_MS = 500;

/**
 * The first-token limit of one attempt. The model's `first_token_ms` is a budget for the whole
 * call, failovers included, so that the caller sees the first token within it: an attempt with
 * another deployment after it gets half of what is left (its failover the other half), the last
 * deployment all that is left. Never below MIN_FIRST_TOKEN_MS (or the limit itself, if smaller).
 */
export function firstTokenShareMs(limitMs: number, elapsedMs: number, isLastDeployment: boolean): number {
  const left = limitMs - Math.max(0, elapsedMs);
  const share = Math.floor(isLastDeployment ? left : left / 2);
  return Math.max(Math.min(limitMs, MIN_FIRST_TOKEN_MS), share);
}

export interface AttemptTimeouts {
  scheduleToStartTimeoutMs: number;
  startToCloseTimeoutMs: number;
  heartbeatTimeoutMs: number;
  scheduleToCloseTimeoutMs: number;
}

/**
 * Timeouts of one `generate` call on one deployment. Retries on the same deployment must end
 * within the request's remaining time, so schedule-to-close is capped by it.
 */
export function attemptTimeouts(model: ModelInfo, retry: RetrySettings, remainingMs: number): AttemptTimeouts {
  const remaining = Math.max(1, Math.floor(remainingMs));
  const startToClose = Math.min(model.attemptTimeoutMs, remaining);
  return {
    scheduleToStartTimeoutMs: Math.min(retry.scheduleToStartTimeoutMs, remaining),
    startToCloseTimeoutMs: startToClose,
    // The activity heartbeats at least every second while it waits, so a dead worker is noticed
    // within a few seconds even when the model is slow to start.
    heartbeatTimeoutMs: Math.min(Math.max(3000, Math.min(model.firstTokenTimeoutMs, model.streamIdleTimeoutMs)), startToClose),
    scheduleToCloseTimeoutMs: remaining,
  };
}

/** Time left before the deadline below which a new attempt is not worth starting. */
export const MIN_ATTEMPT_MS = 50;

/** Streaming-evaluation settings of a step, with defaults; null when the step turned it off. */
export function earlyAbortOptions(step: PolicyStep): EarlyAbortOptions | null {
  if (step.early_abort === false) return null;
  return { logprob_min_tokens: 32, logprob_margin: 0.2, max_tokens: null, ...step.early_abort };
}

/** What stopping a lost answer early saved, estimated from the model's typical answer length and this call's pace. */
export function savedByEarlyStop(model: ModelInfo, output: { usage: Usage; latencyMs: number; firstTokenMs: number | null }): { tokens: number; ms: number } {
  const produced = output.usage.completion_tokens;
  const tokens = Math.max(0, model.expectedOutputTokens - produced);
  const streamingMs = Math.max(1, output.latencyMs - (output.firstTokenMs ?? 0));
  const msPerToken = produced > 0 ? streamingMs / produced : model.p50LatencyMs / Math.max(1, model.expectedOutputTokens);
  return { tokens, ms: Math.round(tokens * msPerToken) };
}

export interface HedgeInput {
  hedge: HedgeSpec | undefined;
  /** Pre-router's P(this step is accepted), when the policy has a pre-router. */
  pAccept: number | undefined;
  remainingMs: number;
  /** Expected latency of this step and of the next one (measured P50, else configured). */
  thisMs: number;
  nextMs: number;
}

/** Why the next step should start alongside this one, or null to run them one after the other. */
export function hedgeReason(h: HedgeInput): string | null {
  if (!h.hedge) return null;
  if (h.hedge.below_p !== undefined && h.pAccept !== undefined && h.pAccept < h.hedge.below_p)
    return `pre-router P(accept) ${h.pAccept.toFixed(2)} < ${h.hedge.below_p}`;
  if (h.hedge.on_deadline && h.thisMs + h.nextMs > h.remainingMs)
    return `${Math.round(h.thisMs)} + ${Math.round(h.nextMs)} ms back to back exceed the ${Math.max(0, Math.round(h.remainingMs))} ms left`;
  return null;
}

/**
 * What a cancelled hedge may have cost: the prompt and a whole typical answer. An upper bound on
 * purpose — the cancellation reaches the upstream only with the activity's next heartbeat, and a
 * loser that had already finished was billed in full — so budgets are never under-counted.
 */
export function cancelledCallCost(model: ModelInfo, promptTokens: number, maxTokens?: number): number {
  return costUsd(model, promptTokens, Math.min(maxTokens ?? model.expectedOutputTokens, model.expectedOutputTokens));
}

/** The wait expected before a step's call starts: the backlog of the pool its first deployment is on. */
export function expectedBacklogMs(deployments: readonly DeploymentRef[], backlogMs: Readonly<Record<string, number>> | undefined): number {
  const first = deployments[0];
  return first ? (backlogMs?.[first.pool] ?? 0) : 0;
}

/** A step's preferred pools first, in its order; the other deployments keep theirs after them. */
export function preferPools(deployments: DeploymentRef[], pools: string[] | undefined): DeploymentRef[] {
  if (!pools?.length) return deployments;
  const rank = (d: DeploymentRef) => {
    const i = pools.indexOf(d.pool);
    return i < 0 ? pools.length : i;
  };
  return [...deployments].sort((a, b) => rank(a) - rank(b));
}
