/** Drives every pool of the default layout with the official `openai` client (base URL only). */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { firstRows, GPT4, GSM8K, MIXTRAL, MT_BENCH, startTestFarm, type TestFarm } from './helpers.js';
import type { DatasetRow } from '../../common/dataset.js';

let farm: TestFarm;
let row: DatasetRow;

before(async () => {
  farm = await startTestFarm();
  row = (await firstRows(GSM8K, 1))[0]!;
});
after(() => farm.close());

const layout: { pool: string; model: string; sim: string }[] = [
  { pool: 'cpu', model: MIXTRAL, sim: 'sim-small' },
  { pool: 'gpu-a', model: MIXTRAL, sim: 'sim-small' },
  { pool: 'api', model: GPT4, sim: 'sim-large' },
];

for (const { pool, model, sim } of layout) {
  describe(`pool ${pool}`, () => {
    test('lists its models, marking simulated ones', async () => {
      const models = await farm.client(pool).models.list();
      const byId = new Map(models.data.map((m) => [m.id, m as unknown as Record<string, unknown>]));
      assert.deepEqual([...byId.keys()].sort(), [model, sim].sort());
      assert.equal(byId.get(sim)!.owned_by, 'cascade-farm (simulated)');
      assert.equal(byId.get(sim)!.simulated, true);
      assert.equal(byId.get(model)!.simulated, undefined);
    });

    test('non-stream answer is the recorded response with recorded usage', async () => {
      const res = await farm.client(pool).chat.completions.create({ model, messages: [{ role: 'user', content: row.prompt }] });
      const recorded = row.models[model]!;
      assert.equal(res.object, 'chat.completion');
      assert.equal(res.model, model);
      assert.equal(res.choices[0]!.message.content, recorded.response);
      assert.equal(res.choices[0]!.finish_reason, 'stop');
      assert.equal(res.usage!.prompt_tokens, recorded.inputTokens);
      assert.equal(res.usage!.completion_tokens, recorded.outputTokens);
      assert.equal(res.usage!.total_tokens, recorded.inputTokens! + recorded.outputTokens!);
      // routellm has no confidence signal: logprobs stay null even when asked.
      const withLp = await farm.client(pool).chat.completions.create({ model, logprobs: true, messages: [{ role: 'user', content: row.prompt }] });
      assert.equal(withLp.choices[0]!.logprobs, null);
    });

    test('stream concatenates to the recorded response, ends with finish_reason and a usage chunk', async () => {
      const stream = await farm.client(pool).chat.completions.create({
        model,
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: `  ${row.prompt.replace(/ /g, '\n ')} ` }],
      });
      let text = '';
      const finish: (string | null)[] = [];
      let usage = null;
      let chunks = 0;
      for await (const chunk of stream) {
        chunks++;
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
          text += c.delta.content ?? '';
          finish.push(c.finish_reason);
        }
      }
      assert.equal(text, row.models[model]!.response);
      assert.ok(chunks > 3);
      assert.equal(finish.filter((f) => f !== null).join(), 'stop');
      assert.equal(usage!.completion_tokens, row.models[model]!.outputTokens);
    });

    test('synthetic model: logprobs with top_logprobs, non-stream and stream, marked simulated', async () => {
      const client = farm.client(pool);
      const messages = [{ role: 'user' as const, content: 'Summarise the quarterly report.' }];
      const res = await client.chat.completions.create({ model: sim, logprobs: true, top_logprobs: 3, messages });
      const text = res.choices[0]!.message.content!;
      assert.ok(text.startsWith('[simulated] '));
      assert.equal((res as unknown as { simulated: boolean }).simulated, true);
      const content = res.choices[0]!.logprobs!.content!;
      assert.equal(content.map((t) => t.token).join(''), text);
      for (const t of content) {
        assert.ok(t.logprob <= 0);
        assert.equal(t.top_logprobs.length, 3);
        assert.equal(t.top_logprobs[0]!.token, t.token);
      }
      assert.equal(res.usage!.completion_tokens, content.length);

      const stream = await client.chat.completions.create({ model: sim, logprobs: true, stream: true, messages });
      let streamed = '';
      let tokens = 0;
      for await (const chunk of stream) {
        for (const c of chunk.choices) {
          streamed += c.delta.content ?? '';
          tokens += c.logprobs?.content?.length ?? 0;
        }
      }
      assert.equal(streamed, text, 'synthetic answers are deterministic');
      assert.equal(tokens, content.length);
    });
  });
}

test('a prompt outside the data falls back to clearly simulated text on a pool with fallback', async () => {
  const raw = await farm
    .client('api')
    .chat.completions.create({ model: GPT4, messages: [{ role: 'user', content: 'Not in any dataset: plan my week.' }] })
    .withResponse();
  assert.equal(raw.response.headers.get('x-farm-simulated'), 'true');
  assert.equal(raw.response.headers.get('x-farm-backend'), 'synthetic');
  assert.ok(raw.data.choices[0]!.message.content!.startsWith('[simulated] '));
  assert.equal(raw.data.model, GPT4);
});

test('MT-Bench second turns replay through the whole conversation', async () => {
  const [mt] = await firstRows(MT_BENCH, 1);
  const turn2 = mt!.turns![0]!;
  const res = await farm.client('api').chat.completions.create({
    model: GPT4,
    messages: [
      { role: 'user', content: mt!.prompt },
      { role: 'assistant', content: mt!.models[GPT4]!.response! },
      { role: 'user', content: turn2.prompt },
    ],
  });
  assert.equal(res.choices[0]!.message.content, turn2.responses[GPT4]);
});
