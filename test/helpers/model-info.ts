/** A registry model for the pure unit tests: $1 / $2 per 1M tokens, two plain deployments unless told. */
import type { ModelInfo } from '../../common/types.js';

export function testModel(name: string, over: Partial<ModelInfo> = {}): ModelInfo {
  return {
    name,
    inputUsdPer1M: 1,
    outputUsdPer1M: 2,
    contextWindow: 4096,
    p50LatencyMs: 100,
    p99LatencyMs: 500,
    expectedOutputTokens: 100,
    firstTokenTimeoutMs: 1000,
    streamIdleTimeoutMs: 1000,
    attemptTimeoutMs: 5000,
    deployments: [{ id: `${name}@a`, pool: 'a', taskQueue: 'qa', fallback: false }],
    ...over,
  };
}
