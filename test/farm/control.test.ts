/** Control routes, fault scoping, bounded inputs, latency and the concurrency limit. */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { defineFarmConfig } from '../../farm/index.js';
import { postChat, readSse, startTestFarm, type TestFarm } from './helpers.js';

const ask = (content = 'Give me a status update.') => ({ model: 'sim-small', messages: [{ role: 'user', content }] });

describe('default test layout', () => {
  let farm: TestFarm;
  before(async () => {
    farm = await startTestFarm();
  });
  after(() => farm.close());
  beforeEach(async () => {
    await farm.reset();
    await fetch(`${farm.origin('cpu')}/farm/faults`, { method: 'DELETE' });
  });

  test('the attempt log is farm-wide, filterable, and served under /farm and /_farm', async () => {
    await postChat(farm.baseUrl('cpu'), ask(), { 'x-request-id': 'a' });
    await postChat(farm.baseUrl('gpu-a'), ask(), { 'x-request-id': 'b' });
    await postChat(farm.baseUrl('api'), { ...ask(), model: 'sim-large', stream: true }, { 'x-request-id': 'a' }).then(readSse);
    for (const prefix of ['/farm', '/_farm']) {
      const res = await fetch(`${farm.origin('gpu-a')}${prefix}/log?request_id=a`);
      const { attempts } = (await res.json()) as { attempts: Record<string, unknown>[] };
      assert.deepEqual(
        attempts.map((a) => [a.pool, a.model, a.stream, a.backend, a.outcome]),
        [
          ['cpu', 'sim-small', false, 'synthetic', 'ok'],
          ['api', 'sim-large', true, 'synthetic', 'ok'],
        ],
      );
      assert.equal(typeof attempts[0]!.t_ms, 'number');
      assert.equal(new Date(attempts[0]!.time as string).getTime(), attempts[0]!.t_ms);
    }
    assert.equal((await farm.log({ pool: 'gpu-a' })).length, 1);
    assert.equal((await farm.log({ model: 'sim-large' })).length, 1);
    const reset = await fetch(`${farm.origin('api')}/_farm/reset`, { method: 'POST' });
    assert.equal(reset.status, 200);
    assert.deepEqual(await farm.log(), []);
  });

  test('scoped header faults hit only the matching pool and model; several can be listed', async () => {
    const header = { 'x-farm-fault': 'error-once;pool=cpu, unavailable;pool=gpu-a;model=sim-small', 'x-request-id': 'scoped' };
    assert.equal((await postChat(farm.baseUrl('cpu'), ask(), header)).status, 500);
    assert.equal((await postChat(farm.baseUrl('cpu'), ask(), header)).status, 200, 'the retry sees the healthy path');
    assert.equal((await postChat(farm.baseUrl('gpu-a'), ask(), header)).status, 503);
    assert.equal((await postChat(farm.baseUrl('api'), { ...ask(), model: 'sim-large' }, header)).status, 200);
    const log = await farm.log({ request_id: 'scoped' });
    assert.deepEqual(
      log.map((a) => [a.pool, a.fault, a.outcome]),
      [
        ['cpu', 'error-once', '500'],
        ['cpu', null, 'ok'],
        ['gpu-a', 'unavailable', '503'],
        ['api', null, 'ok'],
      ],
    );
  });

  test('without x-request-id, "once" is keyed on the last user message', async () => {
    const h = { 'x-farm-fault': 'error-once' };
    assert.equal((await postChat(farm.baseUrl('cpu'), ask('first prompt'), h)).status, 500);
    assert.equal((await postChat(farm.baseUrl('cpu'), ask('  first   prompt '), h)).status, 200);
    assert.equal((await postChat(farm.baseUrl('cpu'), ask('second prompt'), h)).status, 500);
  });

  test('runtime faults: POST /farm/faults makes one pool misbehave without headers; DELETE clears', async () => {
    const add = await fetch(`${farm.origin('api')}/farm/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ fault: 'unavailable', pool: 'cpu' }),
    });
    assert.deepEqual(await add.json(), { faults: [{ fault: 'unavailable', pool: 'cpu' }] });
    assert.equal((await postChat(farm.baseUrl('cpu'), ask())).status, 503);
    assert.equal((await postChat(farm.baseUrl('gpu-a'), ask())).status, 200);
    await fetch(`${farm.origin('gpu-a')}/_farm/faults`, { method: 'DELETE' });
    assert.equal((await postChat(farm.baseUrl('cpu'), ask())).status, 200);
    for (const bad of [{ fault: 'explode' }, { fault: 'unavailable', pool: 'gpu_a' }]) {
      const res = await fetch(`${farm.origin('cpu')}/farm/faults`, { method: 'POST', body: JSON.stringify(bad) });
      assert.equal(res.status, 400, JSON.stringify(bad));
      assert.equal(((await res.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
    }
    assert.deepEqual(((await (await fetch(`${farm.origin('cpu')}/farm/faults`)).json()) as { faults: unknown[] }).faults, []);
  });

  test('bad input gets OpenAI-shaped errors and never crashes the pool', async () => {
    const url = farm.baseUrl('cpu');
    const cases: [RequestInit, number, string][] = [
      [{ body: '{"model": "sim-small", "messages": [' }, 400, 'invalid_json'],
      [{ body: '"just a string"' }, 400, 'invalid_json'],
      [{ body: JSON.stringify({ model: 'sim-small' }) }, 400, 'invalid_request_error'],
      [{ body: JSON.stringify({ model: 'sim-small', messages: [{ role: 'wizard', content: 'x' }] }) }, 400, 'invalid_request_error'],
      [{ body: JSON.stringify(ask()), headers: { 'x-farm-fault': 'explode' } }, 400, 'invalid_request_error'],
      [{ body: JSON.stringify(ask()), headers: { 'x-farm-fault': 'unavailable;pool=gpu_a' } }, 400, 'invalid_request_error'],
      [{ body: JSON.stringify({ ...ask(), model: 'no-such-model' }) }, 404, 'model_not_found'],
      [{ body: JSON.stringify({ ...ask(), n: 3 }) }, 400, 'invalid_request_error'],
    ];
    for (const [init, status, code] of cases) {
      const res = await fetch(`${url}/chat/completions`, { method: 'POST', ...init, headers: { 'content-type': 'application/json', ...init.headers } });
      assert.equal(res.status, status, String(init.body));
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, code);
      assert.ok(body.error.message.length > 0);
    }
    const unknownRoute = await fetch(`${url}/embeddings`, { method: 'POST' });
    assert.equal(unknownRoute.status, 404);
    assert.ok(((await unknownRoute.json()) as { error: unknown }).error);
    assert.equal((await postChat(url, ask())).status, 200, 'still serving');
    const outcomes = (await farm.log({ pool: 'cpu' })).map((a) => a.outcome);
    assert.deepEqual(outcomes, [...Array(6).fill('invalid_request'), 'model_not_found', 'invalid_request', 'ok']);
  });

  test('GET /v1/models/<id> works for ids with a slash', async () => {
    const res = await fetch(`${farm.baseUrl('cpu')}/models/mistralai/Mixtral-8x7B-Instruct-v0.1`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { id: string }).id, 'mistralai/Mixtral-8x7B-Instruct-v0.1');
  });
});

describe('hardware simulation and limits', () => {
  let farm: TestFarm;
  before(async () => {
    farm = await startTestFarm(
      defineFarmConfig(
        {
          max_body_bytes: 2048,
          faults: [{ fault: 'content-filter', pool: 'slow', model: 'sim-b' }],
          models: {
            'sim-a': { backend: 'synthetic', context_window: 4096, synthetic: { output_tokens: 21 } },
            'sim-b': { backend: 'synthetic', context_window: 4096 },
          },
          pools: {
            slow: { port: 0, concurrency: 1, models: { 'sim-a': { ttft_ms: 150, tokens_per_s: 100 }, 'sim-b': null } },
          },
        },
        { env: {} },
      ),
    );
  });
  after(() => farm.close());

  test('time to first token and tokens per second shape the stream', async () => {
    const started = Date.now();
    const sse = await readSse(await postChat(farm.baseUrl('slow'), { ...ask(), model: 'sim-a', stream: true }));
    const total = Date.now() - started;
    assert.ok(sse.arrivals.length > 3, 'tokens arrive over time, not in one write');
    assert.ok(sse.arrivals[0]! >= 130, `first token at ${sse.arrivals[0]} ms`);
    // 21 tokens at 100 tokens/s after a 150 ms first token: about 150 + 200 ms.
    assert.ok(total >= 320 && total < 3000, `stream took ${total} ms`);
  });

  test('beyond the concurrency limit requests queue (visible at GET /farm/pools)', async () => {
    const started = Date.now();
    const pending = Promise.all(
      [1, 2].map(async () => {
        const res = await postChat(farm.baseUrl('slow'), { ...ask(), model: 'sim-a' });
        await res.json();
        return Date.now() - started;
      }),
    );
    await new Promise((r) => setTimeout(r, 80));
    const { pools } = (await (await fetch(`${farm.origin('slow')}/farm/pools`)).json()) as { pools: Record<string, unknown>[] };
    assert.deepEqual(pools, [{ name: 'slow', models: ['sim-a', 'sim-b'], concurrency: 1, in_flight: 1, queued: 1 }]);
    const [fast, slow] = (await pending).sort((a, b) => a - b);
    assert.ok(slow! >= fast! + 250, `second request finished at ${slow} ms, first at ${fast} ms`);
  });

  test('config faults apply to their pool and model', async () => {
    const res = await postChat(farm.baseUrl('slow'), { ...ask(), model: 'sim-b' });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'content_policy_violation');
  });

  test('bodies over max_body_bytes get an OpenAI-shaped 413', async () => {
    const res = await postChat(farm.baseUrl('slow'), ask('x'.repeat(5000)));
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'request_too_large');
    const log = await farm.log();
    assert.equal(log.at(-1)!.outcome, 'payload_too_large');
  });

  test('a client that goes away mid-stream is logged as client-closed', async () => {
    const ac = new AbortController();
    const res = await postChat(farm.baseUrl('slow'), { ...ask('abort me'), model: 'sim-a', stream: true }, { 'x-request-id': 'gone' }, ac.signal);
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(
      (await farm.log({ request_id: 'gone' })).map((a) => a.outcome),
      ['client-closed'],
    );
  });
});
