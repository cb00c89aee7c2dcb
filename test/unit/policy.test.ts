/** The pure policy math and the cascade driver, without Temporal (effects are scripted). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CascadeInput, GenerateOutput, ModelInfo } from '../../common/types.js';
import { attemptTimeouts, costUsd, estimatePromptTokens, stepFeasibility } from '../../workflows/policy.js';
import { CascadeFailure, runCascade, type CascadeEffects, type GenerateCall, type GenerateOutcome } from '../../workflows/cascade-core.js';
import { DeploymentHealth } from '../../activities/breaker.js';

const model = (name: string, over: Partial<ModelInfo> = {}): ModelInfo => ({
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
  deployments: [
    { id: `${name}@a`, pool: 'a', taskQueue: 'qa', fallback: false },
    { id: `${name}@b`, pool: 'b', taskQueue: 'qb', fallback: false },
  ],
  ...over,
});

describe('policy math', () => {
  it('prices tokens per million and estimates prompts at ~4 characters per token', () => {
    assert.equal(costUsd(model('m'), 1_000_000, 500_000), 2);
    assert.equal(estimatePromptTokens({ messages: [{ role: 'user', content: 'x'.repeat(400) }] }), 104);
  });

  it('refuses a step that cannot fit its context window, deadline or budget, and says why', () => {
    const base = {
      model: model('m'),
      promptTokens: 100,
      maxTokens: undefined,
      remainingMs: 10_000,
      measuredP50Ms: null,
      spentUsd: 0,
      maxCostUsd: 1,
      extraCalls: 0,
    };
    assert.deepEqual(stepFeasibility(base), { ok: true });
    assert.equal((stepFeasibility({ ...base, promptTokens: 5000 }) as any).reason, 'context_length');
    assert.equal((stepFeasibility({ ...base, remainingMs: 50 }) as any).reason, 'deadline');
    assert.deepEqual(stepFeasibility({ ...base, remainingMs: 50, measuredP50Ms: 20 }), { ok: true }, 'a measured latency replaces the configured one');
    assert.equal((stepFeasibility({ ...base, maxCostUsd: 0.0001 }) as any).reason, 'budget');
    assert.equal((stepFeasibility({ ...base, maxCostUsd: 0.0006, extraCalls: 2 }) as any).reason, 'budget', 'evaluator calls count in the estimate');
  });

  it('bounds every attempt by the time left', () => {
    const t = attemptTimeouts(
      model('m'),
      { initialIntervalMs: 100, backoffCoefficient: 2, maximumIntervalMs: 1000, maximumAttempts: 3, scheduleToStartTimeoutMs: 2000 },
      1500,
    );
    assert.equal(t.scheduleToCloseTimeoutMs, 1500);
    assert.ok(t.startToCloseTimeoutMs <= 1500 && t.scheduleToStartTimeoutMs <= 1500 && t.heartbeatTimeoutMs <= 1500);
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive failures, lets one probe through after the pause, closes on success', () => {
    let now = 0;
    const h = new DeploymentHealth({ failureThreshold: 2, openMs: 1000, now: () => now });
    const deps = model('m').deployments;
    h.record('m@a', false, 'upstream_error');
    assert.deepEqual(
      h.order(deps).map((d) => d.id),
      ['m@a', 'm@b'],
    );
    h.record('m@a', false, 'upstream_error');
    assert.deepEqual(
      h.order(deps).map((d) => d.id),
      ['m@b'],
    );
    now = 1000;
    assert.deepEqual(
      h.order(deps).map((d) => d.id),
      ['m@a', 'm@b'],
      'half-open: one probe',
    );
    assert.deepEqual(
      h.order(deps).map((d) => d.id),
      ['m@b'],
      'only one probe at a time',
    );
    h.record('m@a', true);
    assert.equal(h.state('m@a'), 'closed');
  });

  it('does not blame a deployment for errors that concern the request', () => {
    const h = new DeploymentHealth({ failureThreshold: 1, openMs: 1000 });
    h.record('m@a', false, 'context_length_exceeded');
    h.record('m@a', false, 'content_policy_violation');
    assert.equal(h.state('m@a'), 'closed');
  });
});

/** Scripted effects: answers and confidences per model, failures per deployment. */
function effects(script: { fail?: Record<string, string>; confidence: Record<string, number> }) {
  let clock = 0;
  const calls: GenerateCall[] = [];
  const fx: CascadeEffects = {
    now: () => clock,
    route: async (m) => ({ deployments: m.deployments, measuredP50Ms: null }),
    report: async () => {},
    generate: async (call): Promise<GenerateOutcome> => {
      calls.push(call);
      clock += 10;
      const failure = script.fail?.[call.deployment.id];
      if (failure) return { ok: false, error: { type: failure, message: failure, retries: 0, latencyMs: 10 } };
      const output: GenerateOutput = {
        content: `answer of ${call.model.name}`,
        finishReason: 'stop',
        logprobs: null,
        usage: { prompt_tokens: 1000, completion_tokens: 1000, total_tokens: 2000 },
        upstreamModel: call.model.name,
        latencyMs: 10,
        firstTokenMs: 5,
        attempt: 1,
        pool: call.deployment.pool,
      };
      return { ok: true, output };
    },
    evaluate: async (call) => ({ confidence: script.confidence[call.model] ?? 0, reasons: [] }),
  };
  return { fx, calls };
}

const input = (over: Partial<CascadeInput> = {}): CascadeInput => ({
  requestId: 'r',
  requestHash: 'h',
  params: { messages: [{ role: 'user', content: 'q' }] },
  policy: {
    name: 'p',
    steps: [
      { model: 'small', evaluator: { type: 'x' }, threshold: 0.5 },
      { model: 'large', evaluator: { type: 'none' }, threshold: 0 },
    ],
    evaluate_last_step: false,
    deadline_ms: 10_000,
    max_cost_usd: 1,
  },
  models: { small: model('small'), large: model('large', { inputUsdPer1M: 10, outputUsdPer1M: 20, contextWindow: 100_000 }) },
  retry: { initialIntervalMs: 100, backoffCoefficient: 2, maximumIntervalMs: 1000, maximumAttempts: 3, scheduleToStartTimeoutMs: 1000 },
  ...over,
});

describe('cascade driver', () => {
  it('accepts the cheap answer when it clears the threshold', async () => {
    const { fx, calls } = effects({ confidence: { small: 0.9 } });
    const r = await runCascade(input(), 'wf', fx);
    assert.equal(r.model, 'small');
    assert.equal(calls.length, 1);
    assert.equal(r.cascade.escalations, 0);
    assert.equal(r.cascade.cost_usd, costUsd(model('small'), 1000, 1000));
  });

  it('escalates on low confidence and bills both answers', async () => {
    const { fx } = effects({ confidence: { small: 0.2 } });
    const r = await runCascade(input(), 'wf', fx);
    assert.equal(r.model, 'large');
    assert.equal(r.cascade.final_step, 2);
    assert.equal(r.cascade.escalations, 1);
    assert.ok(Math.abs(r.cascade.cost_usd - (0.003 + 0.03)) < 1e-12);
  });

  it('fails over between deployments and never bills a failed call', async () => {
    const { fx, calls } = effects({ fail: { 'small@a': 'upstream_error' }, confidence: { small: 0.9 } });
    const r = await runCascade(input(), 'wf', fx);
    assert.deepEqual(
      calls.map((c) => c.deployment.id),
      ['small@a', 'small@b'],
    );
    assert.equal(r.cascade.attempts[0]!.cost_usd, 0);
    assert.equal(r.cascade.attempts[1]!.pool, 'b');
  });

  it('does not fail over a request error: content policy ends the request with its reason', async () => {
    const { fx, calls } = effects({ fail: { 'small@a': 'content_policy_violation' }, confidence: {} });
    await assert.rejects(runCascade(input(), 'wf', fx), (e: unknown) => e instanceof CascadeFailure && e.type === 'content_policy_violation');
    assert.equal(calls.length, 1);
  });

  it('after context_length_exceeded, skips steps whose window is no larger', async () => {
    const i = input();
    i.policy.steps.splice(1, 0, { model: 'same', evaluator: { type: 'x' }, threshold: 0.5 });
    i.models.same = model('same');
    const { fx, calls } = effects({ fail: { 'small@a': 'context_length_exceeded' }, confidence: {} });
    const r = await runCascade(i, 'wf', fx);
    assert.equal(r.model, 'large');
    assert.deepEqual(
      calls.map((c) => c.model.name),
      ['small', 'large'],
    );
    assert.equal(r.cascade.attempts[1]!.error, 'skipped:context_length');
  });

  it('self-consistency and judge: the extra samples and the verdict are asked at once, billed, and passed to the evaluator in order', async () => {
    const { fx, calls } = effects({ confidence: { small: 0.9 } });
    let inFlight = 0;
    let maxInFlight = 0;
    const generate = fx.generate;
    fx.generate = async (call) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
      return generate(call);
    };
    let seen: { samples?: string[]; judgeVerdict?: string } = {};
    const evaluate = fx.evaluate;
    fx.evaluate = async (call) => {
      seen = { samples: call.samples, judgeVerdict: call.judgeVerdict };
      return evaluate(call);
    };
    const base = input();
    const policy = {
      ...base.policy,
      steps: [
        {
          ...base.policy.steps[0]!,
          evaluator: {
            type: 'min',
            of: [
              { type: 'self-consistency', samples: 4 },
              { type: 'judge', model: 'large' },
            ],
          },
        },
        base.policy.steps[1]!,
      ],
    };
    const r = await runCascade({ ...base, policy }, 'wf', fx);
    assert.equal(r.model, 'small');
    assert.equal(maxInFlight, 4, 'three extra samples and the judge in flight together');
    assert.deepEqual(
      calls.map((c) => c.requestId),
      ['wf/1/answer', 'wf/1/sample-1', 'wf/1/sample-2', 'wf/1/sample-3', 'wf/1/judge'],
    );
    assert.deepEqual(seen, { samples: Array(4).fill('answer of small'), judgeVerdict: 'answer of large' });
    assert.equal(r.cascade.attempts.filter((a) => a.detail === 'sample').length, 3);
    const billed = 4 * costUsd(model('small'), 1000, 1000) + costUsd(base.models.large!, 1000, 1000);
    assert.ok(Math.abs(r.cascade.cost_usd - billed) < 1e-12, 'the samples and the judge are billed');
  });

  it('is deterministic: the same effects give the same trace', async () => {
    const a = await runCascade(input(), 'wf', effects({ confidence: { small: 0.2 } }).fx);
    const b = await runCascade(input(), 'wf', effects({ confidence: { small: 0.2 } }).fx);
    assert.deepEqual(a, b);
  });
});
