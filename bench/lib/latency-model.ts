/**
 * Latency of a recorded answer when the dataset has no per-call `latency_ms`: the farm's timing
 * model (config/farm.yaml), time to first token + output tokens ÷ tokens per second, on the first
 * farm pool that serves the model (the default stack's primary deployment). Pure once loaded.
 */
import { join } from 'node:path';
import { loadFarmConfig } from '../../farm/index.js';
import { REPO_ROOT } from '../../config/load.js';
import { percentile as quantile } from '../../evaluators/train/stats.js';

export interface CallLatency {
  ttftMs: number;
  totalMs: number;
}

/** `pool`: the pool a step prefers (policy `pools:`); default: the first pool serving the model. */
export type LatencyModel = (model: string, outputTokens: number, pool?: string) => CallLatency | null;

/** Timings keyed by model, and by `pool/model` for each pool that serves it. */
export function latencyFromTimings(timings: Record<string, { ttft_ms: number; tokens_per_s: number }>): LatencyModel {
  return (model, outputTokens, pool) => {
    const t = (pool && timings[`${pool}/${model}`]) || timings[model];
    if (!t) return null;
    const streamMs = t.tokens_per_s > 0 ? (1000 * Math.max(0, outputTokens - 1)) / t.tokens_per_s : 0;
    return { ttftMs: t.ttft_ms, totalMs: t.ttft_ms + streamMs };
  };
}

/** The timing model of a farm config file (default: the embedded default stack's). */
export async function farmLatencyModel(file = join(REPO_ROOT, 'config', 'farm.yaml')): Promise<LatencyModel> {
  const farm = await loadFarmConfig(file);
  const timings: Record<string, { ttft_ms: number; tokens_per_s: number }> = {};
  for (const [name, pool] of Object.entries(farm.pools))
    for (const [model, t] of Object.entries(pool.models)) {
      timings[model] ??= { ttft_ms: t.ttft_ms, tokens_per_s: t.tokens_per_s };
      timings[`${name}/${model}`] = { ttft_ms: t.ttft_ms, tokens_per_s: t.tokens_per_s };
    }
  return latencyFromTimings(timings);
}

export interface LatencyStats {
  latency_p50_ms: number;
  latency_p99_ms: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
}

/** Percentile (0-100) of an unsorted list, with the project's one interpolating percentile. */
export function percentile(values: number[], p: number): number {
  return values.length
    ? quantile(
        [...values].sort((a, b) => a - b),
        p / 100,
      )
    : 0;
}

export function latencyStats(samples: { latency: number; ttft: number }[]): LatencyStats | null {
  if (samples.length === 0) return null;
  const total = samples.map((s) => s.latency);
  const first = samples.map((s) => s.ttft);
  return {
    latency_p50_ms: percentile(total, 50),
    latency_p99_ms: percentile(total, 99),
    ttft_p50_ms: percentile(first, 50),
    ttft_p99_ms: percentile(first, 99),
  };
}
