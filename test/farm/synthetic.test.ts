/** The synthetic backend: labelled text, deterministic answers, and a configured confidence distribution. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSyntheticBackend } from '../../farm/backends/synthetic.js';
import type { GenerateRequest } from '../../farm/backends/types.js';
import { defineFarmConfig } from '../../farm/index.js';
import { postChat, startTestFarm, type TestFarm } from './helpers.js';

const settings = { output_tokens: { min: 10, max: 30 }, confidence: { high: 0.95, low: 0.35, high_share: 0.7 }, json_schema_share: 0.5 };
const backend = createSyntheticBackend({ sim: settings });
const req = (prompt: string, more: Partial<GenerateRequest> = {}): GenerateRequest => ({
  model: 'sim',
  messages: [{ role: 'user', content: prompt }],
  wantLogprobs: true,
  topLogprobs: 0,
  ...more,
});

test('a configured share of prompts gets the high confidence, the rest the low one', async () => {
  let high = 0;
  const n = 2000;
  for (let i = 0; i < n; i++) {
    const answer = (await backend.generate(req(`prompt number ${i}`)))!;
    const mean = answer.tokens.reduce((s, t) => s + t.logprob!, 0) / answer.tokens.length;
    const confidence = Math.exp(mean);
    assert.ok(Math.abs(confidence - 0.95) < 1e-9 || Math.abs(confidence - 0.35) < 1e-9, `confidence ${confidence}`);
    if (confidence > 0.9) high++;
    assert.ok(answer.outputTokens >= 10 && answer.outputTokens <= 30);
  }
  assert.ok(Math.abs(high / n - 0.7) < 0.04, `high share ${high / n}`);
});

test('answers are deterministic in (model, prompt), labelled, and honour max_tokens', async () => {
  const a = (await backend.generate(req('same prompt')))!;
  const b = (await backend.generate(req('  same   prompt ')))!;
  assert.equal(a.text, b.text);
  assert.ok(a.text.startsWith('[simulated] '));
  assert.equal(a.simulated, true);
  assert.equal(a.tokens.map((t) => t.text).join(''), a.text);
  const capped = (await backend.generate(req('same prompt', { maxTokens: 3 })))!;
  assert.equal(capped.finishReason, 'length');
  assert.equal(capped.outputTokens, 3);
  assert.ok(a.text.startsWith(capped.text));
  assert.equal(await backend.generate(req('x', { model: 'unknown' })), null);
});

let farm: TestFarm;
before(async () => {
  farm = await startTestFarm(
    defineFarmConfig({
      models: { sim: { backend: 'synthetic', context_window: 100_000, synthetic: settings } },
      pools: { load: { port: 0, models: { sim: null } } },
    }),
  );
});
after(() => farm.close());

test('x-farm-output-tokens requests an exact length (load and document tests)', async () => {
  const res = await postChat(farm.baseUrl('load'), { model: 'sim', messages: [{ role: 'user', content: 'doc chunk 1' }] }, { 'x-farm-output-tokens': '500' });
  assert.equal(res.headers.get('x-farm-simulated'), 'true');
  const body = (await res.json()) as { usage: { completion_tokens: number }; choices: { message: { content: string } }[] };
  assert.equal(body.usage.completion_tokens, 500);
  assert.equal(body.choices[0]!.message.content.split(' ').length, 500);
  const bad = await postChat(farm.baseUrl('load'), { model: 'sim', messages: [{ role: 'user', content: 'x' }] }, { 'x-farm-output-tokens': 'lots' });
  assert.equal(bad.status, 400);
});

test('json_schema requests: the configured share of prompts gets schema-shaped JSON, the rest prose; without a schema, always prose', async () => {
  const schema = {
    type: 'object',
    properties: { name: { type: 'string' }, count: { type: 'integer' }, tags: { type: 'array', items: { enum: ['a', 'b'] } }, ok: { type: 'boolean' } },
    required: ['name', 'count', 'tags', 'ok'],
  };
  let json = 0;
  for (let i = 0; i < 400; i++) {
    const a = (await backend.generate(req(`prompt ${i}`, { jsonSchema: schema })))!;
    assert.equal(a.simulated, true);
    assert.equal(a.tokens.map((t) => t.text).join(''), a.text);
    if (a.text.startsWith('[simulated]')) continue;
    json++;
    const v = JSON.parse(a.text);
    assert.equal(typeof v.name, 'string');
    assert.ok(Number.isInteger(v.count));
    assert.ok(Array.isArray(v.tags) && v.tags.length >= 1 && v.tags.every((t: string) => t === 'a' || t === 'b'));
    assert.equal(typeof v.ok, 'boolean');
    assert.deepEqual(await backend.generate(req(`prompt ${i}`, { jsonSchema: schema })), a, 'deterministic');
  }
  assert.ok(json > 150 && json < 250, `json answers: ${json} of 400`);
  assert.match((await backend.generate(req('prompt 1')))!.text, /^\[simulated\] /);
});
