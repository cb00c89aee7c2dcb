/**
 * `backend: llama` in farm config: the pool loads farm/backends/llama.ts by dynamic import and serves
 * a real (tiny, random-weight) GGUF through the same wire format, latency and faults.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { defineFarmConfig } from '../../farm/index.js';
import { writeTinyGguf } from '../../farm/tools/make-tiny-gguf.js';
import { postChat, startTestFarm, type TestFarm } from './helpers.js';

let dir: string;
let farm: TestFarm;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'farm-llama-kind-'));
  await writeTinyGguf(join(dir, 'models', 'tiny.gguf'), { seed: 3 });
  const config = defineFarmConfig(
    {
      models: { tiny: { backend: 'llama', gguf: 'models/tiny.gguf', threads: 1, context_size: 256 } },
      pools: { edge: { port: 0, models: { tiny: null } } },
    },
    { baseDir: dir, env: {} },
  );
  farm = await startTestFarm(config);
});
after(async () => {
  await farm?.close();
  await rm(dir, { recursive: true, force: true });
});

test('a llama model is listed and answers non-stream and stream through the OpenAI client', async () => {
  const client = farm.client('edge');
  const models = await client.models.list();
  assert.deepEqual(
    models.data.map((m) => [m.id, m.owned_by]),
    [['tiny', 'cascade-farm (llama)']],
  );
  const messages = [{ role: 'user' as const, content: 'Say something.' }];
  const res = await client.chat.completions.create({ model: 'tiny', max_tokens: 6, logprobs: true, messages }).withResponse();
  assert.equal(res.response.headers.get('x-farm-backend'), 'llama');
  assert.equal(res.response.headers.get('x-farm-simulated'), null, 'a real model, not simulated text');
  const choice = res.data.choices[0]!;
  assert.ok(res.data.usage!.completion_tokens > 0 && res.data.usage!.completion_tokens <= 6);
  assert.equal(choice.logprobs!.content!.map((t) => t.token).join(''), choice.message.content);

  const stream = await client.chat.completions.create({ model: 'tiny', max_tokens: 6, stream: true, messages });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  assert.equal(text, choice.message.content, 'greedy decoding is deterministic');
});

test('faults and the context window apply to llama models too', async () => {
  const url = farm.baseUrl('edge');
  const body = { model: 'tiny', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] };
  assert.equal((await postChat(url, body, { 'x-farm-fault': 'error-once', 'x-request-id': 'l1' })).status, 500);
  assert.equal((await postChat(url, body, { 'x-farm-fault': 'error-once', 'x-request-id': 'l1' })).status, 200);
  const tooLong = await postChat(url, { ...body, max_tokens: 300 });
  assert.equal(tooLong.status, 400);
  assert.equal(((await tooLong.json()) as { error: { code: string } }).error.code, 'context_length_exceeded');
  assert.deepEqual(
    (await farm.log({ request_id: 'l1' })).map((a) => [a.outcome, a.backend]),
    [
      ['500', null],
      ['ok', 'llama'],
    ],
  );
});
