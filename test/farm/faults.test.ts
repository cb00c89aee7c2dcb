/** One test per fault name: the fault is observed on the wire and in the attempt log. */
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { APIConnectionError } from 'openai';
import { FAULT_NAMES } from '../../farm/index.js';
import { MIXTRAL, postChat, readSse, startTestFarm, type TestFarm } from './helpers.js';

let farm: TestFarm;
let url: string;
before(async () => {
  farm = await startTestFarm();
  url = farm.baseUrl('gpu-a');
});
after(() => farm.close());
beforeEach(() => farm.reset());

const body = (extra: Record<string, unknown> = {}) => ({
  model: 'sim-small',
  messages: [{ role: 'user', content: 'Write a short status update.' }],
  ...extra,
});
const fault = (name: string, requestId: string, more: Record<string, string> = {}) => ({
  'x-farm-fault': name,
  'x-request-id': requestId,
  ...more,
});
const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string | null; type: string; message: string } }).error;

test('every fault name has a test below', () => {
  assert.equal(FAULT_NAMES.length, 14);
});

test('rate-limit-retry-after: 429 with Retry-After: 2 once; the openai client waits and retries', async () => {
  const first = await postChat(url, body(), fault('rate-limit-retry-after', 'rl-wire'));
  assert.equal(first.status, 429);
  assert.equal(first.headers.get('retry-after'), '2');
  assert.equal((await errorOf(first)).code, 'rate_limit_exceeded');
  const second = await postChat(url, body(), fault('rate-limit-retry-after', 'rl-wire'));
  assert.equal(second.status, 200);

  const client = farm.client('gpu-a', { maxRetries: 2 });
  const res = await client.chat.completions.create(
    { model: 'sim-small', messages: [{ role: 'user', content: 'hi' }] },
    { headers: fault('rate-limit-retry-after', 'rl-client') },
  );
  assert.ok(res.choices[0]!.message.content);
  const log = await farm.log({ request_id: 'rl-client' });
  assert.deepEqual(
    log.map((a) => [a.fault, a.outcome]),
    [
      ['rate-limit-retry-after', '429'],
      [null, 'ok'],
    ],
  );
  assert.ok(log[1]!.t_ms - log[0]!.t_ms >= 1900, `retry came after ${log[1]!.t_ms - log[0]!.t_ms} ms`);
});

test('rate-limit: 429 without Retry-After on every attempt', async () => {
  for (let i = 0; i < 2; i++) {
    const res = await postChat(url, body(), fault('rate-limit', 'rl-always'));
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), null);
    assert.equal((await errorOf(res)).code, 'rate_limit_exceeded');
  }
  assert.deepEqual(
    (await farm.log({ request_id: 'rl-always' })).map((a) => a.outcome),
    ['429', '429'],
  );
});

test('error-once: 500 once per request id, then OK', async () => {
  const first = await postChat(url, body(), fault('error-once', 'e1'));
  assert.equal(first.status, 500);
  assert.equal((await errorOf(first)).type, 'server_error');
  assert.equal((await postChat(url, body(), fault('error-once', 'e1'))).status, 200);
  assert.equal((await postChat(url, body(), fault('error-once', 'e2'))).status, 500, 'a new request id fails once again');
  assert.deepEqual(
    (await farm.log({ request_id: 'e1' })).map((a) => a.outcome),
    ['500', 'ok'],
  );
});

test('unavailable: 503 on every attempt', async () => {
  for (let i = 0; i < 2; i++) assert.equal((await postChat(url, body(), fault('unavailable', 'u1'))).status, 503);
  const log = await farm.log({ request_id: 'u1' });
  assert.deepEqual(
    log.map((a) => [a.fault, a.outcome]),
    [
      ['unavailable', '503'],
      ['unavailable', '503'],
    ],
  );
});

test('reset: TCP reset before any response bytes on the first attempt, then OK', async () => {
  await assert.rejects(postChat(url, body(), fault('reset', 'r1')), (err: Error & { cause?: { code?: string } }) => {
    assert.equal(err.cause?.code, 'ECONNRESET');
    return true;
  });
  assert.equal((await postChat(url, body(), fault('reset', 'r1'))).status, 200);
  assert.deepEqual(
    (await farm.log({ request_id: 'r1' })).map((a) => a.outcome),
    ['reset', 'ok'],
  );
});

test('no-response: the request is accepted and never answered', async () => {
  const started = Date.now();
  await assert.rejects(postChat(url, body(), fault('no-response', 'n1'), AbortSignal.timeout(400)), { name: 'TimeoutError' });
  assert.ok(Date.now() - started >= 390);
  const client = farm.client('gpu-a', { timeout: 300 });
  await assert.rejects(
    client.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'x' }] }, { headers: fault('no-response', 'n2') }),
    (err) => err instanceof APIConnectionError,
  );
  assert.deepEqual(
    (await farm.log({ request_id: 'n1' })).map((a) => a.outcome),
    ['no-response'],
  );
});

test('slow-first-token: headers at once, the first token after the delay', async () => {
  const started = Date.now();
  const res = await postChat(url, body({ stream: true }), fault('slow-first-token', 's1', { 'x-farm-fault-delay-ms': '1000' }));
  const headersAfter = Date.now() - started;
  assert.equal(res.status, 200);
  assert.ok(headersAfter < 500, `headers took ${headersAfter} ms`);
  const sse = await readSse(res);
  assert.ok(sse.arrivals[0]! + headersAfter >= 980, `first token after ${sse.arrivals[0]! + headersAfter} ms`);
  assert.equal(sse.events.at(-1), '[DONE]');
  assert.deepEqual(
    (await farm.log({ request_id: 's1' })).map((a) => [a.fault, a.outcome]),
    [['slow-first-token', 'ok']],
  );
});

test('stream-cut: the stream dies after 2/3 of the tokens, without a terminator', async () => {
  const full = await readSse(await postChat(url, body({ stream: true }), { 'x-request-id': 'c0' }));
  const sse = await readSse(await postChat(url, body({ stream: true }), fault('stream-cut', 'c1')));
  assert.ok(sse.error, 'the body ends with a network error');
  assert.ok(!sse.events.includes('[DONE]'));
  const contentChunks = (events: string[]) => events.filter((e) => e !== '[DONE]' && JSON.parse(e).choices[0]?.delta?.content).length;
  assert.equal(contentChunks(sse.events), Math.floor((2 * contentChunks(full.events)) / 3));
  await assert.rejects(async () => {
    const stream = await farm
      .client('gpu-a')
      .chat.completions.create(
        { model: 'sim-small', stream: true, messages: [{ role: 'user', content: 'Write a short status update.' }] },
        { headers: fault('stream-cut', 'c2') },
      );
    for await (const chunk of stream) void chunk;
  });
  assert.deepEqual(
    (await farm.log({ request_id: 'c1' })).map((a) => a.outcome),
    ['stream-cut'],
  );
  // Non-stream: 200 headers, part of the JSON body, then the socket dies.
  const json = await postChat(url, body(), fault('stream-cut', 'c3'));
  assert.equal(json.status, 200);
  await assert.rejects(json.text());
  assert.deepEqual(
    (await farm.log({ request_id: 'c3' })).map((a) => a.outcome),
    ['stream-cut'],
  );
});

test('stream-stall: goes silent mid-stream with the connection open, then closes', async () => {
  const sse = await readSse(await postChat(url, body({ stream: true }), fault('stream-stall', 'st1', { 'x-farm-fault-delay-ms': '400' })));
  assert.ok(!sse.events.includes('[DONE]'));
  assert.ok(sse.events.length > 1, 'some tokens arrived before the stall');
  assert.ok(sse.error, 'the connection closed without a terminator');
  const silence = sse.endedAt - sse.arrivals.at(-1)!;
  assert.ok(silence >= 370, `closed after ${silence} ms of silence`);
  assert.deepEqual(
    (await farm.log({ request_id: 'st1' })).map((a) => a.outcome),
    ['stream-stall'],
  );
  // Non-stream: half the body, silence, then the socket closes.
  const started = Date.now();
  const json = await postChat(url, body(), fault('stream-stall', 'st2', { 'x-farm-fault-delay-ms': '300' }));
  await assert.rejects(json.text());
  assert.ok(Date.now() - started >= 280);
});

test('malformed-chunk: one invalid JSON SSE event mid-stream', async () => {
  const sse = await readSse(await postChat(url, body({ stream: true }), fault('malformed-chunk', 'm1')));
  const invalid = sse.events.filter((e) => {
    if (e === '[DONE]') return false;
    try {
      JSON.parse(e);
      return false;
    } catch {
      return true;
    }
  });
  assert.equal(invalid.length, 1);
  assert.equal(sse.events.at(-1), '[DONE]');
  assert.deepEqual(
    (await farm.log({ request_id: 'm1' })).map((a) => a.outcome),
    ['malformed-chunk'],
  );
  // Non-stream: 200 with an invalid JSON body.
  const res = await postChat(url, body(), fault('malformed-chunk', 'm2'));
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.throws(() => JSON.parse(text), SyntaxError);
});

test('no-done: a complete stream without [DONE]', async () => {
  const sse = await readSse(await postChat(url, body({ stream: true }), fault('no-done', 'd1')));
  assert.equal(sse.error, null, 'the stream ends cleanly');
  assert.ok(!sse.events.includes('[DONE]'));
  const last = JSON.parse(sse.events.at(-1)!);
  assert.equal(last.choices[0].finish_reason, 'stop');
  assert.deepEqual(
    (await farm.log({ request_id: 'd1' })).map((a) => a.outcome),
    ['no-done'],
  );
  // Non-stream: nothing to drop, a normal answer.
  const json = await postChat(url, body(), fault('no-done', 'd2'));
  assert.equal(((await json.json()) as { object: string }).object, 'chat.completion');
  assert.deepEqual(
    (await farm.log({ request_id: 'd2' })).map((a) => [a.fault, a.outcome]),
    [['no-done', 'ok']],
  );
});

test('context-length: 400 context_length_exceeded on demand, and automatically past the context window', async () => {
  const res = await postChat(url, body(), fault('context-length', 'cl1'));
  assert.equal(res.status, 400);
  assert.equal((await errorOf(res)).code, 'context_length_exceeded');
  // sim-small has an 8192-token window; ~10k estimated tokens exceed it with no header at all.
  const big = await postChat(url, { model: 'sim-small', messages: [{ role: 'user', content: 'word '.repeat(8200) }] }, { 'x-request-id': 'cl2' });
  assert.equal(big.status, 400);
  const error = await errorOf(big);
  assert.equal(error.code, 'context_length_exceeded');
  assert.match(error.message, /maximum context length is 8192 tokens/);
  // So does prompt + max_tokens past the window.
  const withMax = await postChat(url, { model: MIXTRAL, max_tokens: 32768, messages: [{ role: 'user', content: 'hi' }] }, { 'x-request-id': 'cl3' });
  assert.equal(withMax.status, 400);
  const log = await farm.log();
  assert.deepEqual(
    log.filter((a) => a.request_id?.startsWith('cl')).map((a) => [a.request_id, a.fault, a.outcome]),
    [
      ['cl1', 'context-length', 'context_length_exceeded'],
      ['cl2', null, 'context_length_exceeded'],
      ['cl3', null, 'context_length_exceeded'],
    ],
  );
});

test('content-filter: 400 content_policy_violation', async () => {
  const res = await postChat(url, body(), fault('content-filter', 'cf1'));
  assert.equal(res.status, 400);
  const error = await errorOf(res);
  assert.equal(error.code, 'content_policy_violation');
  assert.equal(error.type, 'invalid_request_error');
  assert.deepEqual(
    (await farm.log({ request_id: 'cf1' })).map((a) => a.outcome),
    ['content_policy_violation'],
  );
});

test('flap: 503 for flap_seconds after start or reset, then healthy', async () => {
  // The test config sets flap_seconds: 1; beforeEach just reset the flap clock.
  assert.equal((await postChat(url, body(), fault('flap', 'f1'))).status, 503);
  await new Promise((r) => setTimeout(r, 1050));
  assert.equal((await postChat(url, body(), fault('flap', 'f1'))).status, 200);
  await farm.reset();
  assert.equal((await postChat(url, body(), fault('flap', 'f2'))).status, 503, 'reset restarts the flap clock');
  const log = await farm.log();
  assert.deepEqual(
    log.map((a) => [a.request_id, a.fault, a.outcome]),
    [['f2', 'flap', '503']],
    'reset also cleared the log',
  );
});
