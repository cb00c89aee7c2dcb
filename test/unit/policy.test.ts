/** The pure policy math and the cascade driver, without Temporal (effects are scripted). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CascadeInput, GenerateOutput, ModelInfo } from '../../common/types.js';
import { attemptTimeouts, costUsd, estimatePromptTokens, firstTokenShareMs, roundUsd, stepFeasibility } from '../../workflows/policy.js';
import { CascadeFailure, runCascade, type CascadeEffects, type GenerateCall, type GenerateOutcome } from '../../workflows/cascade-core.js';
import { DeploymentHealth } from '../../activities/breaker.js';
import { testModel } from '../helpers/model-info.js';

/** Two deployments (pools a and b) unless told otherwise. */
const model = (name: string, over: Partial<ModelInfo> = {}): ModelInfo =>
  testModel(name, {
    deployments: [
      { id: `${name}@a`, pool: 'a', taskQueue: 'qa', fallback: false },
      { id: `${name}@b`, pool: 'b', taskQueue: 'qb', fallback: false },
    ],
    ...over,
  });

describe('policy math', () => {
  it('prices tokens per million and estimates prompts at ~4 characters per token', () => {
    assert.equal(costUsd(model('m'), 1_000_000, 500_000), 2);
    // (0.24 + 1096 × 0.24) / 1e6 is 0.00026327999999999996 in floating point: money is rounded at the source.
    assert.equal(costUsd({ inputUsdPer1M: 0.24, outputUsdPer1M: 0.24 }, 1, 1096), 0.00026328);
    assert.equal(roundUsd(0.1 + 0.2), 0.3);
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

  it('shares the first-token limit between an attempt and its failover, with a floor', () => {
    assert.equal(firstTokenShareMs(10_000, 0, false), 5000, 'an attempt with a failover after it gets half');
    assert.equal(firstTokenShareMs(10_000, 5100, true), 4900, 'the last deployment gets what is left');
    assert.equal(firstTokenShareMs(10_000, 5100, false), 2450);
    assert.equal(firstTokenShareMs(10_000, 12_000, true), 500, 'a spent budget still leaves the floor');
    assert.equal(firstTokenShareMs(300, 0, false), 300, 'the floor is never above the limit itself');
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive failures, lets one probe through after the pause, closes on success', () => {
    let now = 0;
    const h = new DeploymentHealth({ failureThreshold: 2, openMs: 1000, now: () => now });
    const deps = model('m').deployments;
    h.record('m@a', false, 'upstream_error');
    assert.deepEqual(
      h.order(deps).deployments.map((d) => d.id),
      ['m@a', 'm@b'],
    );
    h.record('m@a', false, 'upstream_error');
    assert.deepEqual(
      h.order(deps).deployments.map((d) => d.id),
      ['m@b'],
    );
    now = 1000;
    assert.deepEqual(
      h.order(deps).deployments.map((d) => d.id),
      ['m@a', 'm@b'],
      'half-open: one probe',
    );
    assert.deepEqual(
      h.order(deps).deployments.map((d) => d.id),
      ['m@b'],
      'only one probe at a time',
    );
    h.record('m@a', true);
    assert.equal(h.state('m@a'), 'closed');
  });

  it('names the probe, and a probe that was handed out but never reported expires after one pause', () => {
    let now = 0;
    const h = new DeploymentHealth({ failureThreshold: 1, openMs: 1000, now: () => now });
    const deps = model('m').deployments;
    h.record('m@b', false, 'upstream_error');
    now = 1000;
    assert.deepEqual(h.order(deps), { deployments: deps, probes: ['m@b'], backlogMs: {} });
    // m@a answered, so the probe of m@b was never made: after another pause someone else probes.
    now = 1500;
    assert.deepEqual(h.order(deps).probes, []);
    now = 2000;
    assert.deepEqual(h.order(deps).probes, ['m@b']);
    h.record('m@b', false, 'upstream_error');
    assert.equal(h.state('m@b'), 'open', 'a failed probe opens the circuit for another pause');
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
    assert.equal(r.cascade.cost_usd, 0.033);
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

  it("after context_length_exceeded, tries the model's other deployments, then skips steps whose window is no larger", async () => {
    const i = input();
    i.policy.steps.splice(1, 0, { model: 'same', evaluator: { type: 'x' }, threshold: 0.5 });
    i.models.same = model('same');
    const { fx, calls } = effects({ fail: { 'small@a': 'context_length_exceeded', 'small@b': 'context_length_exceeded' }, confidence: {} });
    const r = await runCascade(i, 'wf', fx);
    assert.equal(r.model, 'large');
    assert.deepEqual(
      calls.map((c) => c.deployment.id),
      ['small@a', 'small@b', 'large@a'],
    );
    assert.equal(r.cascade.attempts[2]!.error, 'skipped:context_length');
  });

  it('a context_length_exceeded on one deployment is answered by another deployment of the same model', async () => {
    const { fx, calls } = effects({ fail: { 'small@a': 'context_length_exceeded' }, confidence: { small: 0.9 } });
    const r = await runCascade(input(), 'wf', fx);
    assert.equal(r.model, 'small');
    assert.deepEqual(
      calls.map((c) => c.deployment.id),
      ['small@a', 'small@b'],
    );
  });

  it('deployments with their own context window: one too small for the prompt is not called, nor one smaller than a window that refused', async () => {
    const prompt = { messages: [{ role: 'user' as const, content: 'x'.repeat(8000) }] }; // ~2004 tokens
    const deployments = [
      { id: 'small@tiny', pool: 'a', taskQueue: 'qa', fallback: false, contextWindow: 1024 },
      { id: 'small@a', pool: 'a', taskQueue: 'qa', fallback: false, contextWindow: 8192 },
      { id: 'small@b', pool: 'b', taskQueue: 'qb', fallback: true, contextWindow: 4096 },
      { id: 'small@c', pool: 'c', taskQueue: 'qc', fallback: true, contextWindow: 16384 },
    ];
    const i = input({ params: prompt });
    i.models.small = model('small', { deployments });
    const { fx, calls } = effects({ fail: { 'small@a': 'context_length_exceeded' }, confidence: { small: 0.9 } });
    const r = await runCascade(i, 'wf', fx);
    assert.equal(r.cascade.registry_model, 'small');
    assert.deepEqual(
      calls.map((c) => c.deployment.id),
      ['small@a', 'small@c'],
    );
    assert.deepEqual(
      r.cascade.attempts.map((a) => [a.deployment, a.error]),
      [
        ['small@tiny', 'skipped:context_length'],
        ['small@a', 'context_length_exceeded'],
        ['small@b', 'skipped:context_length'],
        ['small@c', null],
      ],
    );
  });

  it('reports the model that actually answered and keeps the registry name in the trace', async () => {
    const { fx } = effects({ confidence: { small: 0.9 } });
    const generate = fx.generate;
    fx.generate = async (call) => {
      const out = await generate(call);
      return out.ok ? { ok: true, output: { ...out.output, upstreamModel: 'vendor/small-v2' } } : out;
    };
    const r = await runCascade(input(), 'wf', fx);
    assert.equal(r.model, 'vendor/small-v2');
    assert.equal(r.cascade.registry_model, 'small');
    assert.equal(r.cascade.attempts[0]!.model, 'small');
    assert.equal(r.cascade.attempts[0]!.upstream_model, 'vendor/small-v2');
  });

  it('budgets the first-token limit across an attempt and its failover, and marks probes', async () => {
    const { fx, calls } = effects({ fail: { 'small@a': 'upstream_timeout' }, confidence: { small: 0.9 } });
    fx.route = async (m) => ({ deployments: m.deployments, measuredP50Ms: null, probes: [`${m.name}@b`] });
    await runCascade(input(), 'wf', fx);
    assert.deepEqual(
      calls.map((c) => [c.deployment.id, c.firstTokenTimeoutMs, c.probe]),
      [
        ['small@a', 500, false],
        ['small@b', 990, true],
      ],
      'half of 1000 ms for the first attempt, the rest (after 10 ms spent) for its failover',
    );
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
