/**
 * The default farm (config/farm.yaml) answers prompts Mixtral has no recording for with the real
 * local llama model, under that model's name and with its real logprobs; recorded prompts still
 * replay, and the strong tier's stand-in stays simulated (labelled) and short for a short prompt.
 * CASCADE_LOCAL_GGUF points the config at the tiny generated GGUF, so no download is needed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadFarmConfig, SIMULATED_PREFIX } from '../../farm/index.js';
import { writeTinyGguf } from '../../farm/tools/make-tiny-gguf.js';
import { DEFAULT_CONFIG, firstRows, GPT4, GSM8K, MIXTRAL, postChat, readSse, startTestFarm, type TestFarm } from './helpers.js';

let dir: string;
let farm: TestFarm;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'farm-llama-fallback-'));
  const gguf = join(dir, 'tiny.gguf');
  await writeTinyGguf(gguf, { seed: 5, chatTemplate: 'chatml' });
  farm = await startTestFarm(await loadFarmConfig(DEFAULT_CONFIG, { ...process.env, CASCADE_LOCAL_GGUF: gguf }));
});
after(async () => {
  await farm?.close();
  await rm(dir, { recursive: true, force: true });
});

const LOCAL = 'smollm2-135m-instruct';
type Completion = { model: string; choices: { message: { content: string }; logprobs: { content: { token: string; logprob: number }[] } | null }[] };

test('the cpu pool lists Mixtral with the local model as its fallback', async () => {
  const models = await farm.client('cpu').models.list();
  const mixtral = models.data.find((m) => m.id === MIXTRAL) as unknown as Record<string, unknown>;
  assert.equal(mixtral.fallback_model, LOCAL);
  assert.equal(mixtral.simulated_fallback, undefined);
});

test('an unrecorded prompt is answered by the real local model under its own name, with real logprobs', async () => {
  for (const pool of ['cpu', 'gpu-a']) {
    const res = await postChat(
      farm.baseUrl(pool),
      { model: MIXTRAL, max_tokens: 8, logprobs: true, messages: [{ role: 'user', content: 'hello' }] },
      { 'x-request-id': `hello-${pool}` },
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-farm-backend'), 'llama');
    assert.equal(res.headers.get('x-farm-simulated'), null, 'real text, not simulated');
    const body = (await res.json()) as Completion;
    assert.equal(body.model, LOCAL, 'the response names the model that answered');
    const choice = body.choices[0]!;
    assert.ok(!choice.message.content.startsWith(SIMULATED_PREFIX.trim()));
    assert.equal(choice.logprobs!.content.map((t) => t.token).join(''), choice.message.content);
    assert.ok(choice.logprobs!.content.every((t) => Number.isFinite(t.logprob) && t.logprob <= 0));
  }
  assert.deepEqual(
    (await farm.log({ request_id: 'hello-cpu' })).map((a) => [a.pool, a.model, a.backend, a.outcome]),
    [['cpu', MIXTRAL, 'llama', 'ok']],
  );
});

test("streamed, the local model's tokens go out while it generates, and add up to the same answer", async () => {
  const body = { model: MIXTRAL, max_tokens: 150, logprobs: true, messages: [{ role: 'user', content: 'Tell me a long story.' }] };
  const whole = (await (await postChat(farm.baseUrl('cpu'), body)).json()) as Completion;
  const res = await postChat(farm.baseUrl('cpu'), { ...body, stream: true, stream_options: { include_usage: true } }, { 'x-request-id': 'live-1' });
  assert.equal(res.headers.get('x-farm-backend'), 'llama');
  const sse = await readSse(res);
  assert.equal(sse.error, null);
  assert.equal(sse.events.at(-1), '[DONE]');
  const chunks = sse.events.slice(0, -1).map(
    (e) =>
      JSON.parse(e) as {
        model: string;
        choices: { delta: { content?: string }; logprobs: Completion['choices'][0]['logprobs'] }[];
        usage?: { completion_tokens: number };
      },
  );
  assert.ok(chunks.every((c) => c.model === LOCAL));
  const deltas = chunks.flatMap((c) => c.choices.filter((ch) => ch.delta.content).map((ch) => ch));
  assert.equal(deltas.map((d) => d.delta.content).join(''), whole.choices[0]!.message.content, 'greedy decoding: the same text as the non-stream answer');
  // The same logprobs, up to float noise (the second request reuses the first one's KV cache).
  const streamed = deltas.flatMap((d) => d.logprobs!.content.map((t) => t.logprob));
  const expected = whole.choices[0]!.logprobs!.content.filter((t) => t.token !== '').map((t) => t.logprob);
  assert.equal(streamed.length, expected.length);
  assert.ok(
    streamed.every((lp, i) => Math.abs(lp - expected[i]!) < 1e-4),
    'logprobs match',
  );
  assert.equal(chunks.at(-1)!.usage!.completion_tokens, whole.choices[0]!.logprobs!.content.length);
  // One write per token while generating: the body reaches the client in several network reads
  // (the simulated path writes a zero-latency answer in one go).
  assert.ok(sse.arrivals.length > 1, `${sse.arrivals.length} network reads`);
  assert.deepEqual(
    (await farm.log({ request_id: 'live-1' })).map((a) => [a.backend, a.outcome]),
    [['llama', 'ok']],
  );
});

test('a recorded prompt still replays Mixtral', async () => {
  const [row] = await firstRows(GSM8K, 1);
  const res = await postChat(farm.baseUrl('gpu-a'), { model: MIXTRAL, messages: [{ role: 'user', content: row!.prompt }] });
  assert.equal(res.headers.get('x-farm-backend'), 'replay');
  const body = (await res.json()) as Completion;
  assert.equal(body.model, MIXTRAL);
  assert.equal(body.choices[0]!.message.content, row!.models[MIXTRAL]!.response);
});

test('json_schema on the local model: the grammar makes the answer match the schema', async () => {
  const schema = { type: 'string', enum: ['bug', 'feature', 'question'] };
  const res = await postChat(farm.baseUrl('cpu'), {
    model: MIXTRAL,
    max_tokens: 12,
    response_format: { type: 'json_schema', json_schema: { name: 'label', schema } },
    messages: [{ role: 'user', content: 'The app crashes when I click save. Label?' }],
  });
  const body = (await res.json()) as Completion;
  assert.ok(schema.enum.includes(JSON.parse(body.choices[0]!.message.content) as string), body.choices[0]!.message.content);
});

test('the strong tier stand-in stays labelled, and a short prompt gets a short simulated answer', async () => {
  const res = await postChat(farm.baseUrl('api'), { model: GPT4, messages: [{ role: 'user', content: 'hello' }] });
  assert.equal(res.headers.get('x-farm-simulated'), 'true');
  const body = (await res.json()) as Completion & { usage: { completion_tokens: number } };
  assert.ok(body.choices[0]!.message.content.startsWith(SIMULATED_PREFIX));
  // 16 + 4 × the prompt's estimated tokens, not the 60–300 configured for real prompts.
  assert.ok(body.usage.completion_tokens <= 24, `${body.usage.completion_tokens} tokens`);
});
