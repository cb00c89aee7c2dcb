/**
 * The cascade end to end through the API with the official openai client: a real Temporal
 * server, real workers and the model farm replaying recorded answers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { APIError } from 'openai';
import { GPT4, MIXTRAL, startStack, type Stack } from '../helpers/stack.js';

const rows = readFileSync(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .filter(Boolean)
  .slice(0, 40)
  .map((l) => JSON.parse(l));
const janet = rows[0].prompt as string; // Mixtral's recorded answer is right and shows its arithmetic

let stack: Stack;
before(async () => {
  stack = await startStack({
    configure: (raw) => {
      raw.policies['self-consistency'] = {
        steps: [{ model: MIXTRAL, evaluator: { type: 'self-consistency', samples: 3 }, threshold: 0.5 }, { model: GPT4 }],
        deadline_ms: 20000,
        max_cost_usd: 0.5,
      };
    },
  });
});
after(async () => {
  await stack?.close();
});

describe('chat completions through the cascade', () => {
  it('answers from the cheap model when its answer passes the evaluator', async () => {
    const res = await stack.openai.chat.completions.create({ model: 'cascade', messages: [{ role: 'user', content: janet }] }).withResponse();
    const completion = res.data as typeof res.data & { cascade: any };
    assert.equal(completion.model, MIXTRAL);
    assert.equal(completion.choices[0]!.message.content, rows[0].models[MIXTRAL].response);
    assert.equal(completion.choices[0]!.finish_reason, 'stop');
    assert.ok(completion.usage!.completion_tokens > 0);
    assert.equal(completion.cascade.final_step, 1);
    assert.equal(completion.cascade.escalations, 0);
    assert.equal(completion.cascade.attempts.length, 1);
    assert.equal(completion.cascade.attempts[0].pool, 'cpu');
    assert.ok(completion.cascade.attempts[0].confidence >= 0.5);
    const workflowId = res.response.headers.get('x-cascade-workflow-id')!;
    assert.match(workflowId, /^chat-/);
    assert.equal(completion.cascade.workflow_id, workflowId);
    assert.ok(Number(res.response.headers.get('x-cascade-cost-usd')) > 0);
    // The Temporal history holds the trace: search attributes are set on the workflow.
    const desc = await stack.client.workflow.getHandle(workflowId).describe();
    assert.equal(desc.status.name, 'COMPLETED');
    assert.equal(desc.typedSearchAttributes.get({ name: 'CascadeFinalStep', type: 'INT' } as any), 1);
    assert.equal(desc.typedSearchAttributes.get({ name: 'CascadePolicy', type: 'KEYWORD' } as any), 'default');
  });

  it('self-consistency: the extra samples run on the pools at once, are billed, and the history shows them in flight together', async () => {
    const res = await stack.openai.chat.completions.create({ model: 'cascade:self-consistency', messages: [{ role: 'user', content: janet }] }).withResponse();
    const completion = res.data as typeof res.data & { cascade: any };
    const samples = completion.cascade.attempts.filter((a: any) => a.detail === 'sample');
    assert.equal(samples.length, 2, JSON.stringify(completion.cascade.attempts));
    assert.ok(samples.every((a: any) => a.model === MIXTRAL && a.cost_usd > 0));
    const history = await stack.client.workflow.getHandle(res.response.headers.get('x-cascade-workflow-id')!).fetchHistory();
    const kinds = (history.events ?? []).map((e) =>
      e.activityTaskScheduledEventAttributes ? 'scheduled' : e.activityTaskCompletedEventAttributes ? 'completed' : null,
    );
    const activities = kinds.filter((k) => k !== null);
    // answer: scheduled, completed; then both samples scheduled before either completes.
    assert.deepEqual(activities, ['scheduled', 'completed', 'scheduled', 'scheduled', 'completed', 'completed']);
  });

  it('escalates to the strong model when the cheap answer fails the evaluator', async () => {
    // JSON was asked for; the recorded Mixtral answer is prose, so the validator rejects it.
    const completion = (await stack.openai.chat.completions.create({
      model: 'cascade',
      messages: [{ role: 'user', content: janet }],
      response_format: { type: 'json_object' },
    })) as any;
    assert.equal(completion.model, GPT4);
    assert.equal(completion.choices[0].message.content, rows[0].models[GPT4].response);
    assert.equal(completion.cascade.final_step, 2);
    assert.equal(completion.cascade.escalations, 1);
    const [first, second] = completion.cascade.attempts;
    assert.equal(first.model, MIXTRAL);
    assert.equal(first.accepted, false);
    assert.ok(first.confidence < 0.5);
    assert.equal(second.model, GPT4);
    assert.equal(second.accepted, true);
    assert.ok(completion.cascade.cost_usd > first.cost_usd + second.cost_usd - 1e-12);
  });

  it('streams the accepted answer as chat.completion.chunk events with usage', async () => {
    const stream = await stack.openai.chat.completions.create({
      model: 'cascade',
      messages: [{ role: 'user', content: janet }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: any = null;
    let model = '';
    for await (const chunk of stream) {
      model = chunk.model;
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (choice?.delta?.content) text += choice.delta.content;
      if (choice?.finish_reason) finish = choice.finish_reason;
    }
    assert.equal(text, rows[0].models[MIXTRAL].response);
    assert.equal(finish, 'stop');
    assert.equal(model, MIXTRAL);
    assert.ok(usage.total_tokens > 0);
  });

  it('calls a configured model directly by name or alias', async () => {
    const completion = (await stack.openai.chat.completions.create({ model: 'gpt-4', messages: [{ role: 'user', content: janet }] })) as any;
    assert.equal(completion.model, GPT4);
    assert.equal(completion.cascade.policy, `model:${GPT4}`);
  });

  it('lists policies and models', async () => {
    const ids = [];
    for await (const m of stack.openai.models.list()) ids.push(m.id);
    assert.ok(ids.includes('cascade'));
    assert.ok(ids.includes('cascade:simulated'));
    assert.ok(ids.includes(MIXTRAL));
  });
});

describe('bad input gets an OpenAI-shaped error and the process stays up', () => {
  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${stack.apiUrl}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  it('rejects malformed JSON with 400', async () => {
    const res = await post('{"model": "cascade", "messages": [');
    assert.equal(res.status, 400);
    const body = (await res.json()) as any;
    assert.equal(body.error.type, 'invalid_request_error');
    assert.equal(body.error.code, 'invalid_json');
    assert.ok('param' in body.error && 'message' in body.error);
  });

  it('rejects a body that is JSON but not an object with 400 invalid_body', async () => {
    for (const body of ['[1, 2]', '"hello"', 'null']) {
      const res = await post(body);
      assert.equal(res.status, 400, body);
      assert.equal(((await res.json()) as any).error.code, 'invalid_body', body);
    }
  });

  it('rejects wrong types naming the field', async () => {
    const res = await post(JSON.stringify({ model: 'cascade', messages: [{ role: 'user', content: 42 }] }));
    assert.equal(res.status, 400);
    const body = (await res.json()) as any;
    assert.equal(body.error.param, 'messages.0.content');
  });

  it('rejects an unknown model with 404 model_not_found', async () => {
    await assert.rejects(stack.openai.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }), (err: unknown) => {
      assert.ok(err instanceof APIError);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'model_not_found');
      return true;
    });
  });

  it('rejects a body over the limit with 413', async () => {
    const res = await post(JSON.stringify({ model: 'cascade', messages: [{ role: 'user', content: 'x'.repeat(70_000) }] }));
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as any).error.code, 'request_too_large');
  });

  it('rejects unsupported fields instead of ignoring them', async () => {
    const res = await post(JSON.stringify({ model: 'cascade', messages: [{ role: 'user', content: 'hi' }], n: 3 }));
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as any).error.param, 'n');
  });

  it('answers an unknown route with an OpenAI-shaped 404 and is still healthy', async () => {
    const res = await fetch(`${stack.apiUrl}/nope`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as any).error.type, 'invalid_request_error');
    const health = await fetch(stack.apiUrl.replace(/\/v1$/, '/healthz'));
    assert.equal(health.status, 200);
  });
});
