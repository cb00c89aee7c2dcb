/** Learning from traffic, the pure part (workflows/learn.ts), and the cascade core driven by it in a closed loop. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testModel } from '../helpers/model-info.js';
import type { CascadeInput, CascadeTrace, GenerateOutput, LearnSettings, ModelInfo } from '../../common/types.js';
import {
  addSummary,
  decisionFor,
  decodeSummary,
  emptyLearnState,
  encodeSummary,
  isProbe,
  ladderHash,
  LEARN_DEFAULTS,
  stepDecisions,
  summarize,
  type TraceSummary,
} from '../../workflows/learn.js';
import { runCascade, type CascadeEffects } from '../../workflows/cascade-core.js';
import { costUsd } from '../../workflows/policy.js';
import { configSchema } from '../../config/schema.js';

const settings: LearnSettings = { ...LEARN_DEFAULTS, window: 50, min_samples: 10, probe_every: 10, margin: 0.5 };
const summary = (cheap: 'a' | 'r', cheapCost = 0.001, topCost = 0.1): TraceSummary => ({
  ladder: 'L',
  costUsd: cheap === 'a' ? cheapCost : cheapCost + topCost,
  topCostUsd: topCost,
  steps:
    cheap === 'a'
      ? [{ step: 1, verdict: 'a', costUsd: cheapCost }]
      : [
          { step: 1, verdict: 'r', costUsd: cheapCost },
          { step: 2, verdict: 'a', costUsd: topCost },
        ],
});

describe('learning from traffic: the decision', () => {
  it('summarises a trace per step and survives the search-attribute encoding', () => {
    const trace: CascadeTrace = {
      workflow_id: 'w',
      policy: 'p',
      final_step: 2,
      escalations: 1,
      cost_usd: 0.0123,
      attempts: [
        { step: 1, model: 's', pool: 'a', deployment: 's@a', latency_ms: 5, confidence: null, accepted: false, error: 'upstream_error', cost_usd: 0 },
        { step: 1, model: 's', pool: 'b', deployment: 's@b', latency_ms: 5, confidence: 0.2, accepted: false, error: null, cost_usd: 0.0003 },
        { step: 2, model: 'l', pool: 'c', deployment: 'l@c', latency_ms: 9, confidence: null, accepted: true, error: null, cost_usd: 0.012 },
      ],
    };
    const s = summarize(trace, 'abcd1234', ['q1', undefined], 0.012);
    assert.deepEqual(s.steps, [
      { step: 1, cls: 'q1', verdict: 'r', costUsd: 0.0003 },
      { step: 2, verdict: 'a', costUsd: 0.012 },
    ]);
    assert.equal(encodeSummary(s), 'v1 abcd1234 0.0123 0.012 1q1:r:0.0003 2:a:0.012');
    assert.deepEqual(decodeSummary(encodeSummary(s)), s);
    assert.equal(decodeSummary('v2 x'), null);
    const skipped = summarize({ ...trace, attempts: [{ ...trace.attempts[0]!, error: 'skipped:unprofitable' }, trace.attempts[2]!] }, 'x', [], null);
    assert.equal(skipped.steps[0]!.verdict, 's');
  });

  it('skips a step that is always rejected once it has min_samples outcomes, with the numbers', () => {
    const state = emptyLearnState('L', 2);
    for (let i = 0; i < settings.min_samples - 1; i++) addSummary(state, summary('r'), settings);
    assert.equal(state.decisions['1']!.skip, false, 'not before min_samples');
    addSummary(state, summary('r'), settings);
    const d = state.decisions['1']!;
    assert.equal(d.skip, true);
    assert.equal(d.samples, 10);
    assert.equal(d.acceptance, 0);
    assert.ok(Math.abs(d.step_cost_usd - 0.001) < 1e-12 && Math.abs(d.rest_cost_usd! - 0.1) < 1e-12);
    assert.equal(d.changed_at, 10);
    // Another ladder's summaries never mix in.
    addSummary(state, { ...summary('a'), ladder: 'other' }, settings);
    assert.equal(state.processed, 10);
  });

  it('keeps a step that pays, and brings a skipped one back only past the hysteresis margin', () => {
    const state = emptyLearnState('L', 2);
    // Acceptance 0.5 at 1% of the top step's cost: 0.5 × 0.1 = 0.05 > 0.001, clearly pays.
    for (let i = 0; i < 20; i++) addSummary(state, summary(i % 2 ? 'a' : 'r'), settings);
    assert.equal(state.decisions['1']!.skip, false);

    // A step that costs half the top step pays only above 50 % acceptance.
    const s2 = emptyLearnState('L', 2);
    for (let i = 0; i < 10; i++) addSummary(s2, summary('r', 0.05), settings);
    assert.equal(s2.decisions['1']!.skip, true);
    // Acceptance climbs: 0.05 < a·0.1 is a > 0.5; with margin 0.5 it must reach a·0.1 > 0.075, a > 0.75.
    for (let i = 0; i < 30; i++) addSummary(s2, summary('a', 0.05), settings); // 30 of 40 = 0.75: not yet
    assert.equal(s2.decisions['1']!.acceptance, 0.75);
    assert.equal(s2.decisions['1']!.skip, true, 'inside the hysteresis band it stays skipped');
    addSummary(s2, summary('a', 0.05), settings); // 31 of 41 > 0.75
    assert.equal(s2.decisions['1']!.skip, false);
    // Falling below break-even skips it again at once (no margin that way).
    for (let i = 0; i < 50; i++) addSummary(s2, summary(i % 5 < 2 ? 'a' : 'r', 0.05), settings); // window: 0.4
    assert.equal(s2.decisions['1']!.acceptance, 0.4);
    assert.equal(s2.decisions['1']!.skip, true);
  });

  it('uses a pre-router class of its own once the class has min_samples outcomes', () => {
    const state = emptyLearnState('L', 2);
    const withClass = (s: TraceSummary, cls: string): TraceSummary => ({ ...s, steps: s.steps.map((x) => (x.step === 1 ? { ...x, cls } : x)) });
    for (let i = 0; i < 10; i++) addSummary(state, withClass(summary('r'), 'q0'), settings);
    for (let i = 0; i < 30; i++) addSummary(state, withClass(summary('a'), 'q3'), settings);
    assert.equal(decisionFor(state.decisions, 1, 'q0', settings.min_samples)!.skip, true);
    assert.equal(decisionFor(state.decisions, 1, 'q3', settings.min_samples)!.skip, false);
    assert.equal(decisionFor(state.decisions, 1, 'q2', settings.min_samples)!.skip, false, 'a class without samples: the step overall');
  });

  it('probes one request in probe_every, spread over workflow ids', () => {
    const n = 20_000;
    let probes = 0;
    for (let i = 0; i < n; i++) if (isProbe(`chat-${i}`, 1, 20)) probes++;
    assert.ok(Math.abs(probes / n - 1 / 20) < 0.01, `${probes} of ${n}`);
    assert.equal(isProbe('x', 1, 1), true);
  });

  it('is on by default in a policy, can be turned off, and names a bad field', () => {
    const base = { pools: {}, models: {}, default_policy: 'p' };
    const parsed = configSchema.parse({ ...base, policies: { p: { steps: [{ model: 'm' }] } } });
    assert.deepEqual(parsed.policies.p!.learn, LEARN_DEFAULTS);
    assert.equal(configSchema.parse({ ...base, policies: { p: { steps: [{ model: 'm' }], learn: false } } }).policies.p!.learn, false);
    const bad = configSchema.safeParse({ ...base, policies: { p: { steps: [{ model: 'm' }], learn: { window: 20, min_samples: 50 } } } });
    assert.equal(bad.success, false);
    assert.deepEqual(bad.error!.issues[0]!.path, ['policies', 'p', 'learn', 'min_samples']);
  });
});

const model = (name: string, usdPer1M: number): ModelInfo => testModel(name, { inputUsdPer1M: usdPer1M, outputUsdPer1M: usdPer1M, contextWindow: 100_000 });

describe('learning from traffic: the cascade core in a closed loop', () => {
  it('stops calling a cheap step that is always rejected, probes it, and stays within top-alone cost plus the learning allowance', async () => {
    const models = { small: model('small', 1), large: model('large', 100) };
    const input: CascadeInput = {
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
        learn: settings,
      },
      models,
      retry: { initialIntervalMs: 100, backoffCoefficient: 2, maximumIntervalMs: 1000, maximumAttempts: 3, scheduleToStartTimeoutMs: 1000 },
    };
    const ladder = ladderHash(input.policy.steps);
    const state = emptyLearnState(ladder, 2);
    const calls: string[] = [];
    const fx: CascadeEffects = {
      now: () => 0,
      // The router worker's answer, here straight from the entity's state (in production: a cached copy of it).
      route: async (m, q) => ({
        deployments: m.deployments,
        measuredP50Ms: null,
        learned: q ? stepDecisions(state.decisions, q.step) : null,
      }),
      report: async () => {},
      generate: async (call) => {
        calls.push(call.model.name);
        const output: GenerateOutput = {
          content: 'x',
          finishReason: 'stop',
          logprobs: null,
          usage: { prompt_tokens: 100, completion_tokens: 100, total_tokens: 200 },
          upstreamModel: call.model.name,
          latencyMs: 1,
          firstTokenMs: 1,
          attempt: 1,
          pool: 'a',
        };
        return { ok: true, output };
      },
      evaluate: async () => ({ confidence: 0, reasons: [] }),
    };
    const requests = 300;
    let total = 0;
    let probes = 0;
    for (let i = 0; i < requests; i++) {
      const r = await runCascade(input, `chat-${i}`, fx);
      total += r.cascade.cost_usd;
      if (r.cascade.probes?.length) probes++;
      if (i >= settings.min_samples) {
        const first = r.cascade.attempts[0]!;
        if (r.cascade.probes?.length) assert.equal(first.error, null, 'a probe runs the step');
        else {
          assert.equal(first.error, 'skipped:unprofitable', `request ${i}`);
          assert.match(first.detail!, /small accepted 0\.00 of the last \d+ requests: \$0\.0002 \+ \(1 − 0\.00\) × \$0\.02 ≥ \$0\.02 without it/);
        }
      }
      addSummary(state, summarize(r.cascade, ladder, [], costUsd(models.large, 100, 100)), settings);
    }
    const cheap = costUsd(models.small, 100, 100);
    const top = costUsd(models.large, 100, 100);
    assert.equal(calls.filter((m) => m === 'small').length, settings.min_samples + probes);
    assert.ok(probes > 0 && probes < (requests / settings.probe_every) * 2, `${probes} probes`);
    // The top step alone would cost requests × top; the cascade spends that plus only its learning allowance.
    assert.ok(Math.abs(total - (requests * top + (settings.min_samples + probes) * cheap)) < 1e-9);
  });
});
