/**
 * Pool backlog in routing (activities/backlog.ts, fasterFirst in activities/breaker.ts,
 * stepFeasibility in workflows/policy.ts): the decisions, without Temporal.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BACKLOG_WINDOW_MS, BACKLOGGED_MS, PoolBacklog } from '../../activities/backlog.js';
import { DeploymentHealth, fasterFirst } from '../../activities/breaker.js';
import type { DeploymentRef, ModelInfo } from '../../common/types.js';
import { expectedBacklogMs, stepFeasibility } from '../../workflows/policy.js';

const ref = (id: string, pool = id, fallback = false): DeploymentRef => ({ id, pool, taskQueue: pool, fallback });
const ids = (ds: DeploymentRef[]) => ds.map((d) => d.id);

describe('pool backlog', () => {
  it('is the median of the recent waits, and drains: old waits stop counting', () => {
    let now = 0;
    const backlog = new PoolBacklog(() => now);
    assert.equal(backlog.expectedMs('cpu'), 0, 'nothing known: no backlog');
    for (const ms of [900, 1200, 50]) backlog.record('cpu', ms);
    assert.equal(backlog.expectedMs('cpu'), 900);
    now = BACKLOG_WINDOW_MS + 1;
    assert.equal(backlog.expectedMs('cpu'), 0, 'the waits are older than the window');
    backlog.record('cpu', 400);
    assert.deepEqual(backlog.snapshot(['cpu', 'gpu']), { cpu: 400 });
    for (const ms of [30, 80]) backlog.record('gpu', ms);
    assert.equal(backlog.expectedMs('gpu'), 0, `waits under ${BACKLOGGED_MS} ms are dispatch latency, not a queue`);
  });

  it('puts an equivalent deployment whose pool is not backlogged first', () => {
    const unmeasured = () => null;
    const backlog: Record<string, number> = { cpu: 1500, gpu: 0, api: 0, busyish: 60 };
    const wait = (pool: string) => backlog[pool] ?? 0;
    assert.deepEqual(ids(fasterFirst([ref('cpu'), ref('gpu')], unmeasured, wait)), ['gpu', 'cpu'], 'latencies unknown: the backlog decides');
    assert.deepEqual(ids(fasterFirst([ref('busyish'), ref('gpu')], unmeasured, wait)), ['busyish', 'gpu'], '60 ms of waiting is within the margin');
    assert.deepEqual(ids(fasterFirst([ref('cpu'), ref('api', 'api', true)], unmeasured, wait)), ['cpu', 'api'], 'a fallback stays a fallback');
    // Measured: a fast pool with a queue against a slower idle one, latency + backlog each.
    const p50: Record<string, number> = { cpu: 400, gpu: 1000 };
    assert.deepEqual(ids(fasterFirst([ref('cpu'), ref('gpu')], (id) => p50[id] ?? null, wait)), ['gpu', 'cpu'], '400 + 1500 ms against 1000 ms');
    assert.deepEqual(ids(fasterFirst([ref('cpu'), ref('gpu')], (id) => p50[id] ?? null)), ['cpu', 'gpu'], 'without the backlog cpu is faster');
  });

  it('learns it from the reports: the router orders by the waits its calls met', () => {
    const health = new DeploymentHealth({ failureThreshold: 3, openMs: 1000 });
    const deployments = [ref('m@cpu', 'cpu'), ref('m@gpu', 'gpu')];
    assert.deepEqual(ids(health.order(deployments).deployments), ['m@cpu', 'm@gpu']);
    health.backlog.record('cpu', 2000);
    const routed = health.order(deployments);
    assert.deepEqual(ids(routed.deployments), ['m@gpu', 'm@cpu']);
    assert.deepEqual(routed.backlogMs, { cpu: 2000 });
  });

  it('counts in the deadline check: a step that fits by latency alone may not fit after the wait', () => {
    const model: ModelInfo = {
      name: 'm',
      inputUsdPer1M: 1,
      outputUsdPer1M: 1,
      contextWindow: 4096,
      p50LatencyMs: 1000,
      p99LatencyMs: 3000,
      expectedOutputTokens: 100,
      firstTokenTimeoutMs: 1000,
      streamIdleTimeoutMs: 1000,
      attemptTimeoutMs: 5000,
      deployments: [ref('m@cpu', 'cpu')],
    };
    const base = { model, promptTokens: 10, maxTokens: undefined, remainingMs: 1500, measuredP50Ms: null, spentUsd: 0, maxCostUsd: 1, extraCalls: 0 };
    assert.deepEqual(stepFeasibility(base), { ok: true });
    const late = stepFeasibility({ ...base, backlogMs: expectedBacklogMs(model.deployments, { cpu: 800 }) });
    assert.equal(late.ok, false);
    assert.match(late.ok ? '' : late.detail, /needs 1000 ms \(\+800 ms waiting for its pool\), 1500 ms left/);
    assert.equal(expectedBacklogMs([ref('m@gpu', 'gpu'), ref('m@cpu', 'cpu')], { cpu: 800 }), 0, 'the pool tried first is what counts');
  });
});
