/** Replay over a dataset with more than two models and missing optional fields. */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { estimateTokens } from '../../common/dataset.js';
import { defineFarmConfig } from '../../farm/index.js';
import { postChat, startTestFarm, type TestFarm } from './helpers.js';

const rows = [
  {
    id: 'q1',
    dataset: 'toy',
    prompt: 'What is 2+2?',
    reference: '4',
    models: {
      'alpha-7b': { response: 'The answer is 4.', correct: true, input_tokens: 12, output_tokens: 6, logprob: -0.2, latency_ms: 300 },
      'beta-70b': { response: 'Four.' },
      'gamma-1b': { response: '2 + 2 = 4, so the answer is four.', correct: false, logprob: -1.5 },
      'delta-3b': { response: null, correct: null },
    },
    some_unknown_field: { ignored: true },
  },
  {
    id: 'q2',
    dataset: 'toy',
    prompt: '  Name   a colour\nplease. ',
    models: { 'beta-70b': { response: 'Blue is a colour that many people like a lot.', score: 7 } },
  },
  {
    id: 'q3',
    dataset: 'toy',
    prompt: 'Write a haiku about rain.',
    prompt_turn2: 'Now make it rhyme.',
    models: {
      'alpha-7b': { response: 'Rain taps on the roof', response_turn2: 'Rain again, in vain' },
      'gamma-1b': { response: 'Drops fall', response_turn2: null },
    },
  },
];

let farm: TestFarm;
let url: string;

before(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'farm-replay-'));
  await writeFile(join(dir, 'toy.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n\n');
  const config = defineFarmConfig(
    {
      datasets: ['toy.jsonl'],
      models: {
        'alpha-7b': { backend: 'replay', context_window: 4096 },
        'beta-70b': { backend: 'replay', context_window: 4096 },
        'gamma-1b': { backend: 'replay', context_window: 4096 },
        // Served under another name than the one in the data.
        beta: { backend: 'replay', context_window: 4096, recorded_as: 'beta-70b' },
      },
      pools: {
        strict: { port: 0, models: { 'alpha-7b': null, 'beta-70b': null, 'gamma-1b': null, beta: null } },
        lenient: { port: 0, fallback: 'synthetic', models: { 'alpha-7b': { ttft_ms: 0, recorded_latency_scale: 1 }, 'beta-70b': null } },
      },
    },
    { baseDir: dir, env: {} },
  );
  farm = await startTestFarm(config);
  url = farm.baseUrl('strict');
});
after(() => farm.close());

const ask = (model: string, content: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  postChat(
    url,
    {
      model,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content },
      ],
      ...extra,
    },
    headers,
  );

test('each of several models answers with its own recording', async () => {
  const answers = await Promise.all(
    ['alpha-7b', 'beta-70b', 'gamma-1b'].map(
      async (m) => ((await (await ask(m, 'What is 2+2?')).json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content,
    ),
  );
  assert.deepEqual(answers, ['The answer is 4.', 'Four.', '2 + 2 = 4, so the answer is four.']);
  const alias = (await (await ask('beta', 'What is 2+2?')).json()) as { model: string; choices: { message: { content: string } }[] };
  assert.equal(alias.choices[0]!.message.content, 'Four.');
  assert.equal(alias.model, 'beta', 'the model answering is the request model');
});

test('matches on the whitespace-normalised last user message, or on x-replay-id', async () => {
  const raw = await ask('beta-70b', 'Name a colour please.');
  assert.equal(raw.headers.get('x-farm-replay-id'), 'q2', 'the matched row is named in the response');
  const res = (await raw.json()) as { choices: { message: { content: string } }[] };
  assert.match(res.choices[0]!.message.content, /^Blue/);
  const byId = (await (await ask('beta-70b', 'unrelated text', {}, { 'x-replay-id': 'q2' })).json()) as { choices: { message: { content: string } }[] };
  assert.match(byId.choices[0]!.message.content, /^Blue/);
});

test('usage: recorded token counts, estimated when absent', async () => {
  const recorded = (await (await ask('alpha-7b', 'What is 2+2?')).json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
  assert.deepEqual([recorded.usage.prompt_tokens, recorded.usage.completion_tokens], [12, 6]);
  const estimated = (await (await ask('beta-70b', 'What is 2+2?')).json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
  assert.equal(estimated.usage.completion_tokens, estimateTokens('Four.'));
  assert.equal(estimated.usage.prompt_tokens, estimateTokens('Be brief.') + estimateTokens('What is 2+2?'));
});

test('a prompt not in the data is an OpenAI-shaped 404 prompt_not_in_replay_set without a fallback', async () => {
  for (const [model, prompt] of [
    ['alpha-7b', 'Not recorded anywhere'],
    ['alpha-7b', 'Name a colour please.'], // recorded, but not for this model
  ] as const) {
    const res = await ask(model, prompt, {}, { 'x-request-id': 'nf' });
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: { code: string; type: string; param: string } };
    assert.equal(body.error.code, 'prompt_not_in_replay_set');
    assert.equal(body.error.type, 'invalid_request_error');
  }
  assert.deepEqual(
    (await farm.log({ request_id: 'nf' })).map((a) => a.outcome),
    ['not_found', 'not_found'],
  );
});

test('with a fallback backend the pool answers unknown prompts with simulated text', async () => {
  const res = await postChat(farm.baseUrl('lenient'), { model: 'beta-70b', messages: [{ role: 'user', content: 'Not recorded anywhere' }] });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-farm-simulated'), 'true');
  const body = (await res.json()) as { simulated: boolean; choices: { message: { content: string } }[] };
  assert.equal(body.simulated, true);
  assert.ok(body.choices[0]!.message.content.startsWith('[simulated] '));
});

test('logprobs: per-token logprobs whose mean is the recorded logprob; null without a recorded signal', async () => {
  for (const [model, mean] of [
    ['alpha-7b', -0.2],
    ['gamma-1b', -1.5],
  ] as const) {
    const res = (await (await ask(model, 'What is 2+2?', { logprobs: true, top_logprobs: 2 })).json()) as {
      choices: { message: { content: string }; logprobs: { content: { token: string; logprob: number; top_logprobs: unknown[] }[] } }[];
    };
    const content = res.choices[0]!.logprobs.content;
    assert.equal(content.map((t) => t.token).join(''), res.choices[0]!.message.content);
    const avg = content.reduce((s, t) => s + t.logprob, 0) / content.length;
    assert.ok(Math.abs(avg - mean) < 1e-9, `mean ${avg} vs recorded ${mean}`);
    assert.ok(content.every((t) => t.top_logprobs.length === 2));
  }
  const none = (await (await ask('beta-70b', 'What is 2+2?', { logprobs: true })).json()) as { choices: { logprobs: unknown }[] };
  assert.equal(none.choices[0]!.logprobs, null);
});

test('max_tokens cuts a recorded answer with finish_reason length', async () => {
  const res = (await (await ask('beta-70b', 'Name a colour please.', { max_tokens: 4 })).json()) as {
    choices: { message: { content: string }; finish_reason: string }[];
    usage: { completion_tokens: number };
  };
  assert.equal(res.choices[0]!.finish_reason, 'length');
  assert.equal(res.usage.completion_tokens, 4);
  assert.ok('Blue is a colour that many people like a lot.'.startsWith(res.choices[0]!.message.content));
  assert.ok(res.choices[0]!.message.content.length < 20);
});

test('recorded latency_ms sets the simulated answer time', async () => {
  const started = Date.now();
  const res = await postChat(farm.baseUrl('lenient'), { model: 'alpha-7b', messages: [{ role: 'user', content: 'What is 2+2?' }] });
  await res.json();
  const took = Date.now() - started;
  assert.ok(took >= 280 && took < 3000, `took ${took} ms for a 300 ms recording`);
});

test('multi-turn rows: the second turn is matched on the whole conversation, or x-replay-id', async () => {
  const conversation = (model: string) =>
    postChat(url, {
      model,
      messages: [
        { role: 'user', content: 'Write a haiku about rain.' },
        { role: 'assistant', content: 'Rain taps on the roof' },
        { role: 'user', content: 'Now   make it rhyme.' },
      ],
    });
  const res = (await (await conversation('alpha-7b')).json()) as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
  assert.equal(res.choices[0]!.message.content, 'Rain again, in vain');
  assert.equal(res.usage.completion_tokens, estimateTokens('Rain again, in vain'));
  assert.equal((await conversation('gamma-1b')).status, 404, 'turn 2 not recorded for gamma');
  const byId = await postChat(
    url,
    {
      model: 'alpha-7b',
      messages: [
        { role: 'user', content: 'a' },
        { role: 'user', content: 'b' },
      ],
    },
    { 'x-replay-id': 'q3' },
  );
  assert.equal(((await byId.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content, 'Rain again, in vain');
  const turnOne = (await (await ask('alpha-7b', 'Write a haiku about rain.')).json()) as { choices: { message: { content: string } }[] };
  assert.equal(turnOne.choices[0]!.message.content, 'Rain taps on the roof');
});
