/** Pure pieces of the farm: header grammar, fault selection, token helpers, the semaphore. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FaultState, parseFaultHeader } from '../../farm/faults.js';
import { planTiming, Semaphore } from '../../farm/latency.js';
import { capAnswer, splitPieces, withLogprobs } from '../../farm/tokens.js';
import { chunkBody, contentChunkWriter, logprobContent, sseEvent } from '../../farm/openai-wire.js';

test('x-farm-fault grammar: names, scopes, lists; unknown names and keys throw', () => {
  assert.deepEqual(parseFaultHeader(' error-once ; pool=cpu ;model=a/b , reset,'), [{ fault: 'error-once', pool: 'cpu', model: 'a/b' }, { fault: 'reset' }]);
  assert.throws(() => parseFaultHeader('error-twice'), /unknown fault "error-twice"/);
  assert.throws(() => parseFaultHeader('reset;region=eu'), /bad scope "region=eu"/);
  assert.throws(() => parseFaultHeader('reset;pool='), /bad scope/);
});

test('fault priority: header, then runtime, then config; once-faults fire once per (fault, model, key)', () => {
  const known = { pools: new Set(['p', 'q']), models: new Set(['m', 'n']) };
  const state = new FaultState([{ fault: 'unavailable', pool: 'q' }], 10, known);
  const key = () => 'k1';
  assert.equal(state.choose('q', 'm', key, [{ fault: 'rate-limit' }]), 'rate-limit');
  assert.equal(state.choose('q', 'm', key, []), 'unavailable');
  assert.equal(state.choose('p', 'm', key, []), null);
  state.addRuntime({ fault: 'content-filter', model: 'n' });
  assert.equal(state.choose('q', 'n', key, []), 'content-filter');
  state.clearRuntime();

  const once = [{ fault: 'error-once' as const }, { fault: 'slow-first-token' as const }];
  assert.equal(state.choose('p', 'm', key, once), 'error-once');
  assert.equal(state.choose('p', 'm', key, once), 'slow-first-token', 'the next rule applies once error-once is spent');
  assert.equal(state.choose('p', 'n', key, once), 'error-once', 'counted per model');
  assert.equal(
    state.choose('p', 'm', () => 'k2', once),
    'error-once',
    'counted per request key',
  );
  state.reset();
  assert.equal(state.choose('p', 'm', key, once), 'error-once', 'reset clears the counters');

  let hashed = 0;
  state.choose('p', 'm', () => `k${++hashed}`, [{ fault: 'rate-limit' }]);
  assert.equal(hashed, 0, 'the request key is only computed for first-attempt faults');
  assert.match(state.scopeProblem({ fault: 'reset', pool: 'x' })!, /unknown pool "x"/);
  assert.equal(state.scopeProblem({ fault: 'reset', pool: 'p', model: 'n' }), null);
});

test('flap: unhealthy for flap_seconds after start or reset', async () => {
  const state = new FaultState([], 0.1, { pools: new Set(['p']), models: new Set(['m']) });
  const flap = [{ fault: 'flap' as const }];
  assert.equal(
    state.choose('p', 'm', () => 'k', flap),
    'flap',
  );
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(
    state.choose('p', 'm', () => 'k', flap),
    null,
  );
  state.reset();
  assert.equal(
    state.choose('p', 'm', () => 'k', flap),
    'flap',
  );
});

test('stream pieces concatenate to the text; logprobs have the exact mean and stay <= 0', () => {
  for (const text of ['', 'one', ' lead and trail ', 'multi\n\nline  text\twith tabs ', '#### 18']) {
    assert.equal(splitPieces(text).join(''), text);
  }
  const pieces = splitPieces('The quick brown fox jumps over the lazy dog again and again');
  const tokens = withLogprobs(pieces, -0.7, 42, 3);
  const mean = tokens.reduce((s, t) => s + t.logprob!, 0) / tokens.length;
  assert.ok(Math.abs(mean + 0.7) < 1e-12);
  for (const t of tokens) {
    assert.ok(t.logprob! <= 0);
    assert.equal(t.topLogprobs!.length, 3);
    const mass = t.topLogprobs!.reduce((s, a) => s + Math.exp(a.logprob), 0);
    assert.ok(mass <= 1 + 1e-9, 'alternatives never exceed probability 1');
  }
  assert.deepEqual(withLogprobs(pieces, -0.7, 42, 0), withLogprobs(pieces, -0.7, 42, 0), 'deterministic');
});

test('capAnswer keeps a proportional prefix and reports length', () => {
  const pieces = splitPieces('a b c d e f g h i j');
  const answer = {
    text: pieces.join(''),
    tokens: pieces.map((text) => ({ text })),
    inputTokens: 1,
    outputTokens: 20,
    finishReason: 'stop' as const,
    simulated: false,
  };
  assert.equal(capAnswer(answer, 20), answer);
  const capped = capAnswer(answer, 10);
  assert.equal(capped.text, 'a b c d e');
  assert.equal(capped.outputTokens, 10);
  assert.equal(capped.finishReason, 'length');
});

test('planTiming: ttft + tokens/s, or a recorded latency', () => {
  const lat = { ttft_ms: 100, tokens_per_s: 50, jitter: 0, recorded_latency_scale: 1 };
  assert.deepEqual(planTiming(lat, 50, 11), { ttftMs: 100, perPieceMs: 100 });
  assert.deepEqual(planTiming(lat, 50, 11, 600), { ttftMs: 100, perPieceMs: 50 });
  assert.deepEqual(planTiming({ ...lat, recorded_latency_scale: 0 }, 50, 11, 600), { ttftMs: 100, perPieceMs: 100 });
  const jittered = planTiming({ ...lat, jitter: 0.5 }, 50, 11);
  assert.ok(jittered.ttftMs >= 50 && jittered.ttftMs <= 150);
});

test('Semaphore: FIFO beyond the limit; an aborted waiter leaves the queue', async () => {
  const sem = new Semaphore(1);
  const release1 = (await sem.acquire())!;
  const order: number[] = [];
  const ac = new AbortController();
  const second = sem.acquire(ac.signal);
  const third = sem.acquire().then((r) => {
    order.push(3);
    return r;
  });
  assert.equal(sem.queued, 2);
  ac.abort();
  assert.equal(await second, null);
  assert.equal(sem.queued, 1);
  release1();
  const release3 = (await third)!;
  assert.deepEqual(order, [3]);
  assert.equal(sem.inFlight, 1);
  release3();
  release3();
  assert.equal(sem.inFlight, 0, 'release is idempotent');
});

test('the fast content-chunk writer is byte-identical to serialising the chunk object', () => {
  const pieces = ['He said "hi"', ' \\ back\nslash', ' ünïcödé 🚀', ' \u0000nul'];
  const entries = logprobContent(withLogprobs(pieces, -0.3, 1, 2))!;
  for (const simulated of [false, true]) {
    for (const withUsage of [false, true]) {
      const ident = { id: 'chatcmpl-x', created: 1, model: 'org/model "q"', simulated };
      const write = contentChunkWriter(ident, withUsage);
      pieces.forEach((text, i) => {
        assert.equal(write(text, null), sseEvent(chunkBody(ident, { content: text }, null, null, withUsage)));
        assert.equal(write(text, entries[i]!), sseEvent(chunkBody(ident, { content: text }, null, [entries[i]!], withUsage)));
      });
    }
  }
});
