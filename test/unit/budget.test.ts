/** The key budget's pure state transitions (workflows/budget.ts), without Temporal. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testModel } from '../helpers/model-info.js';
import type { ModelInfo, PolicySpec } from '../../common/types.js';
import type { ReserveRequest } from '../../common/budget-messages.js';
import { IN_FLIGHT_RETRY_MS, chunkWait, expired, initialState, refusal, reserve, reservedUsd, roll, settle, worstCaseCostUsd } from '../../workflows/budget.js';

const model = (name: string, inUsd: number, outUsd: number): ModelInfo => testModel(name, { inputUsdPer1M: inUsd, outputUsdPer1M: outUsd });
const models = { small: model('small', 1, 2), large: model('large', 10, 30), judge: model('judge', 5, 5) };
const ladder = (over: Partial<PolicySpec> = {}): PolicySpec => ({
  name: 'p',
  steps: [
    { model: 'small', evaluator: { type: 'self-consistency', samples: 3 }, threshold: 0.5 },
    { model: 'large', evaluator: { type: 'none' }, threshold: 0 },
  ],
  evaluate_last_step: false,
  deadline_ms: 10_000,
  max_cost_usd: 1,
  ...over,
});
// 396 characters + one message: 99 + 4 = 103 estimated prompt tokens.
const params = { messages: [{ role: 'user' as const, content: 'x'.repeat(396) }] };
const T0 = Date.UTC(2026, 11, 2, 12, 0, 0);
const req = (id: string, usd: number, over: Partial<ReserveRequest> = {}): ReserveRequest => ({
  id,
  usd,
  tokens: 100,
  ttlMs: 60_000,
  limits: { dayUsd: 1 },
  ...over,
});

describe('worst-case cost of a request', () => {
  it('is every step answered, with its evaluator’s extra calls, at max_tokens', () => {
    // small: 3 calls × (103 × 1 + 50 × 2) / 1e6; large: (103 × 10 + 50 × 30) / 1e6.
    assert.equal(worstCaseCostUsd({ params: { ...params, max_tokens: 50 }, policy: ladder(), models }), (3 * 203 + 2530) / 1e6);
  });

  it('uses expected_output_tokens without max_tokens, counts a judge, and never exceeds the request cap', () => {
    const judged = ladder({
      steps: [
        { model: 'small', evaluator: { type: 'judge', model: 'judge' }, threshold: 0.5 },
        { model: 'large', evaluator: { type: 'none' }, threshold: 0 },
      ],
    });
    // small (103 + 100 × 2) + judge ((103 + 100) × 5 + 100 × 5) + large (1030 + 3000).
    assert.equal(worstCaseCostUsd({ params, policy: judged, models }), (303 + 1515 + 4030) / 1e6);
    assert.equal(worstCaseCostUsd({ params, policy: judged, models, maxCostUsd: 0.001 }), 0.001);
  });
});

describe('key budget state', () => {
  it('grants reservations until spent + reserved would pass the day budget, then refuses with the amounts', () => {
    const s = initialState('key_x', { dayUsd: 1 }, T0);
    for (let i = 0; i < 4; i++) {
      assert.equal(refusal(s, req(`r${i}`, 0.25), T0), null);
      reserve(s, req(`r${i}`, 0.25), T0);
    }
    assert.equal(reservedUsd(s), 1);
    const refused = refusal(s, req('r4', 0.01), T0);
    assert.equal(refused?.code, 'budget_exceeded');
    assert.match(refused!.message, /daily budget of \$1 .*\$1 reserved/);
    assert.ok(refused?.code === 'budget_exceeded');
    assert.equal(refused.period, 'day');
    assert.equal(refused.heldByInFlight, true, 'nothing is spent yet: the reservations in flight are what blocks');
    assert.equal(refused.resetsAtMs, Date.UTC(2026, 11, 3), 'the next UTC day');
    // The same request again (an Idempotency-Key retry) is already paid for.
    assert.equal(refusal(s, req('r0', 0.25), T0), null);
  });

  it('settling replaces the reservation with the real cost and releases the rest, once', () => {
    const s = initialState('key_x', { dayUsd: 1 }, T0);
    reserve(s, req('a', 0.6), T0);
    assert.equal(refusal(s, req('b', 0.6), T0)?.code, 'budget_exceeded');
    settle(s, 'a', 0.1, null, T0 + 10);
    settle(s, 'a', 0.1, null, T0 + 20); // a second settle of the same request counts nothing
    assert.equal(s.dayUsd, 0.1);
    assert.equal(reservedUsd(s), 0);
    assert.equal(refusal(s, req('b', 0.6), T0), null);
    // A settled request asking again reserves nothing.
    reserve(s, req('a', 0.6), T0 + 30);
    assert.equal(reservedUsd(s), 0);
  });

  it('a new UTC day starts from zero; the month keeps counting', () => {
    const s = initialState('key_x', { dayUsd: 1, monthUsd: 1.5 }, T0);
    reserve(s, req('a', 0.9), T0);
    settle(s, 'a', 0.9, null, T0);
    const tomorrow = T0 + 24 * 3600_000;
    const r = req('b', 0.9, { limits: { dayUsd: 1, monthUsd: 1.5 } });
    assert.equal(refusal(s, r, tomorrow)?.code, 'budget_exceeded'); // the month: 0.9 + 0.9 > 1.5
    assert.match(refusal(s, r, tomorrow)!.message, /monthly/);
    const monthly = refusal(s, r, tomorrow);
    assert.ok(monthly?.code === 'budget_exceeded');
    assert.deepEqual([monthly.period, monthly.heldByInFlight, monthly.resetsAtMs], ['month', false, Date.UTC(2027, 0, 1)], 'spent, not held: the next month');
    roll(s, tomorrow);
    assert.equal(s.dayUsd, 0);
    assert.equal(s.monthUsd, 0.9);
    assert.equal(refusal(s, req('c', 0.5, { limits: { dayUsd: 1, monthUsd: 1.5 } }), tomorrow), null);
  });

  it('rate limits per minute: requests and tokens, with the seconds until the oldest leave the window', () => {
    const s = initialState('key_x', {}, T0);
    const limits = { requestsPerMinute: 2, tokensPerMinute: 1000 };
    reserve(s, req('a', 0, { limits }), T0);
    reserve(s, req('b', 0, { limits }), T0 + 20_000);
    const refused = refusal(s, req('c', 0, { limits }), T0 + 30_000);
    assert.deepEqual(refused && { code: refused.code, kind: 'kind' in refused && refused.kind, after: 'retryAfterS' in refused && refused.retryAfterS }, {
      code: 'rate_limit_exceeded',
      kind: 'requests',
      after: 30,
    });
    assert.equal(refusal(s, req('c', 0, { limits }), T0 + 60_000), null); // the first left the window
    const tokens = refusal(s, req('d', 0, { limits: { tokensPerMinute: 1000 }, tokens: 900 }), T0 + 30_000);
    assert.equal(tokens?.code, 'rate_limit_exceeded');
    assert.equal(tokens && 'kind' in tokens && tokens.kind, 'tokens');
    // Settling with the real tokens corrects the estimate: 'a' used 10, not 100.
    settle(s, 'a', 0, 10, T0 + 31_000);
    assert.equal(refusal(s, req('d', 0, { limits: { tokensPerMinute: 1000 }, tokens: 880 }), T0 + 31_000), null);
  });

  it('a reservation nobody settled expires after its TTL', () => {
    const s = initialState('key_x', {}, T0);
    reserve(s, req('a', 0.1, { ttlMs: 5000 }), T0);
    assert.deepEqual(expired(s, T0 + 4999), []);
    assert.deepEqual(
      expired(s, T0 + 5000).map(([id]) => id),
      ['a'],
    );
  });
});

describe('a document chunk its key refused', () => {
  const spent = { code: 'budget_exceeded' as const, message: 'used up', period: 'day' as const, heldByInFlight: false, resetsAtMs: Date.UTC(2026, 11, 3) };
  it("waits for the job's own running chunks before it pauses, and pauses until the budget's period begins", () => {
    assert.deepEqual(chunkWait(spent, 2), { kind: 'own-chunk' });
    assert.deepEqual(chunkWait(spent, 0), { kind: 'pause', reason: 'budget_exceeded: used up', resumeAtMs: Date.UTC(2026, 11, 3) });
  });
  it("asks again soon when only other requests' reservations stand in the way, and waits out a rate limit", () => {
    assert.deepEqual(chunkWait({ ...spent, heldByInFlight: true }, 0), { kind: 'sleep', ms: IN_FLIGHT_RETRY_MS });
    assert.deepEqual(chunkWait({ code: 'rate_limit_exceeded', kind: 'requests', message: 'rpm', retryAfterS: 7 }, 3), { kind: 'sleep', ms: 7000 });
  });
  it('pauses without a time to resume when the key was revoked', () => {
    assert.deepEqual(chunkWait({ code: 'key_revoked', message: 'gone' }, 2), { kind: 'pause', reason: 'key_revoked: gone' });
  });
});
