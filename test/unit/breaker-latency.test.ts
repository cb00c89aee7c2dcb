/** Latency-aware deployment order (activities/breaker.ts): faster equivalent deployments first, by measurement. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeploymentHealth, fasterFirst } from '../../activities/breaker.js';
import type { DeploymentRef } from '../../common/types.js';

const ref = (id: string, fallback = false): DeploymentRef => ({ id, pool: id, taskQueue: id, fallback });

describe('latency-aware deployment order', () => {
  it('moves a deployment ahead only when its median is 1.5x lower, never across primaries and fallbacks', () => {
    const p50: Record<string, number | null> = { slow: 900, fast: 300, near: 700, fb: 10, unknown: null, a: 9, b: 4 };
    const ids = (ds: DeploymentRef[]) => ds.map((d) => d.id);
    assert.deepEqual(ids(fasterFirst([ref('slow'), ref('fast')], (id) => p50[id] ?? null)), ['fast', 'slow']);
    assert.deepEqual(ids(fasterFirst([ref('slow'), ref('near')], (id) => p50[id] ?? null)), ['slow', 'near'], 'within the margin: configured order');
    assert.deepEqual(ids(fasterFirst([ref('slow'), ref('unknown')], (id) => p50[id] ?? null)), ['slow', 'unknown'], 'unmeasured: configured order');
    assert.deepEqual(ids(fasterFirst([ref('slow'), ref('fb', true)], (id) => p50[id] ?? null)), ['slow', 'fb'], 'a fallback stays a fallback');
    assert.deepEqual(ids(fasterFirst([ref('a'), ref('b')], (id) => p50[id] ?? null)), ['a', 'b'], '9 vs 4 ms: noise, not a reason');
  });

  it('learns the order from reported latencies, after enough answers', () => {
    const health = new DeploymentHealth({ failureThreshold: 3, openMs: 1000 });
    const deployments = [ref('cpu'), ref('gpu')];
    for (let i = 0; i < 4; i++) health.recordLatency(['m', 'cpu'], 3000);
    for (let i = 0; i < 5; i++) health.recordLatency(['m', 'gpu'], 800);
    assert.deepEqual(
      health.order(deployments).deployments.map((d) => d.id),
      ['cpu', 'gpu'],
      'four answers on cpu are not enough to judge it',
    );
    health.recordLatency(['m', 'cpu'], 3000);
    assert.deepEqual(
      health.order(deployments).deployments.map((d) => d.id),
      ['gpu', 'cpu'],
    );
  });
});
