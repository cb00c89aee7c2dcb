/**
 * What a request would have cost on its policy's top model (the last step of the ladder): the
 * baseline that Cascade's savings are measured against, by metrics and the usage ledger alike.
 * The answer's own token counts stand in for the top model's (its answer would differ in length;
 * this is the estimate RouteLLM-style cost comparisons use).
 */
import type { ModelInfo, Usage } from './types.js';
import { resolveTarget, type CascadeConfig } from '../config/load.js';

export function callCostUsd(model: Pick<ModelInfo, 'inputUsdPer1M' | 'outputUsdPer1M'>, usage: Pick<Usage, 'prompt_tokens' | 'completion_tokens'>): number {
  return (usage.prompt_tokens * model.inputUsdPer1M + usage.completion_tokens * model.outputUsdPer1M) / 1e6;
}

/** The top model's price for the request's tokens, or null when the request had no answer. */
export function topModelCostUsd(topModel: ModelInfo | null | undefined, usage: Usage | null | undefined): number | null {
  if (!topModel || !usage) return null;
  return callCostUsd(topModel, usage);
}

/** A policy's top model (`model:<name>` for a request that named a model: the model itself). */
export function topModelOf(config: CascadeConfig, policy: string): ModelInfo | undefined {
  const target = resolveTarget(config, policy.startsWith('model:') ? policy.slice('model:'.length) : `cascade:${policy}`);
  const last = target?.policy.steps.at(-1)?.model;
  return last ? config.models.get(last) : undefined;
}
