/**
 * Assistant-prefix continuation without Temporal: the pure decisions (workflows/continuation.ts),
 * the cascade driving them with scripted effects, and the farm's side (farm/continuation.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testModel } from '../helpers/model-info.js';
import type { CascadeInput, DeploymentRef, GenerateOutput, ModelInfo } from '../../common/types.js';
import { runCascade, type CascadeEffects, type GenerateCall, type GenerateOutcome } from '../../workflows/cascade-core.js';
import { joinContinuation, ownUsage, preferContinuing, textSent } from '../../workflows/continuation.js';
import { costOfUsage } from '../../workflows/policy.js';
import { continuationOf, continueAnswer, SIMULATED_CONTINUATION } from '../../farm/continuation.js';
import { FarmHttpError } from '../../farm/openai-wire.js';

const dep = (id: string, over: Partial<DeploymentRef> = {}): DeploymentRef => ({ id, pool: id, taskQueue: `q-${id}`, fallback: false, ...over });
const usage = (p: number, c: number) => ({ prompt_tokens: p, completion_tokens: c, total_tokens: p + c });
const output = (content: string, over: Partial<GenerateOutput> = {}): GenerateOutput => ({
  content,
  finishReason: 'stop',
  logprobs: null,
  usage: usage(100, 10),
  upstreamModel: 'm',
  latencyMs: 10,
  firstTokenMs: 5,
  attempt: 1,
  pool: 'p',
  ...over,
});

describe('continuation decisions', () => {
  it('puts the deployments that can continue first, each group in its configured order', () => {
    const order = preferContinuing([dep('a'), dep('b', { continuation: 'prefix' }), dep('c'), dep('d', { continuation: 'vllm', fallback: true })]);
    assert.deepEqual(
      order.map((d) => d.id),
      ['b', 'd', 'a', 'c'],
    );
  });

  it('accumulates the text of calls that broke: a continuation that breaks again extends it', () => {
    const first = textSent(null, { text: 'The answer ', usage: usage(50, 3) }, 'a');
    assert.deepEqual(first, { text: 'The answer ', usage: usage(50, 3), deployment: 'a' });
    const second = textSent(first, { text: 'is 4', usage: usage(55, 2) }, 'b');
    assert.deepEqual(second, { text: 'The answer is 4', usage: usage(105, 5), deployment: 'b' });
    // A deployment that regenerated from scratch and broke replaces what came before.
    assert.equal(textSent(null, { text: 'Other', usage: usage(1, 1) }, 'c').text, 'Other');
  });

  it('joins the sent text and the continuation into one answer; the continuing call keeps only its own usage', () => {
    const sent = textSent(null, { text: 'The answer ', usage: usage(50, 3) }, 'a');
    const joined = joinContinuation(sent, output('is 4.', { usage: usage(60, 2) }));
    assert.equal(joined.content, 'The answer is 4.');
    assert.deepEqual(joined.usage, usage(110, 5), 'the request paid for both calls');
    assert.deepEqual(joined.continued, { deployment: 'a', chars: 11, usage: usage(50, 3) });
    assert.deepEqual(ownUsage(joined), usage(60, 2));
    assert.deepEqual(ownUsage(output('x')), usage(100, 10));
  });
});

describe('the cascade continues a broken live answer (scripted effects)', () => {
  const model: ModelInfo = testModel('m', { deployments: [dep('m@a'), dep('m@b'), dep('m@c', { continuation: 'vllm' })] });
  const input: CascadeInput = {
    requestId: 'r',
    requestHash: 'h',
    params: { messages: [{ role: 'user', content: 'What is 2 + 2?' }] },
    policy: {
      name: 'one',
      steps: [{ model: 'm', evaluator: { type: 'none' }, threshold: 0 }],
      evaluate_last_step: false,
      deadline_ms: 60_000,
      max_cost_usd: 1,
    },
    models: { m: model },
    retry: { initialIntervalMs: 1, backoffCoefficient: 2, maximumIntervalMs: 1, maximumAttempts: 1, scheduleToStartTimeoutMs: 1000 },
    stream: { url: 'http://api', token: 't', drafts: false },
  };

  it('asks the continuing deployment for the rest and returns prefix + rest, billed once each', async () => {
    const calls: GenerateCall[] = [];
    const fx: CascadeEffects = {
      now: () => 0,
      route: async (m) => ({ deployments: m.deployments, measuredP50Ms: null }),
      report: async () => {},
      evaluate: async () => ({ confidence: 1, reasons: [] }),
      generate: async (call): Promise<GenerateOutcome> => {
        calls.push(call);
        if (call.deployment.id === 'm@a')
          return {
            ok: false,
            error: { type: 'stream_incomplete', message: 'cut', retries: 0, latencyMs: 5, partial: { text: 'The answer ', usage: usage(20, 3) } },
          };
        return { ok: true, output: output('is 4.', { usage: usage(25, 2) }) };
      },
    };
    const result = await runCascade(input, 'wf', fx);
    assert.deepEqual(
      calls.map((c) => [c.deployment.id, c.stream, c.continueFrom]),
      [
        ['m@a', 'live', undefined],
        ['m@c', 'live', 'The answer '],
      ],
      'm@b (no continuation) is passed over for m@c',
    );
    assert.equal(result.content, 'The answer is 4.');
    assert.deepEqual(result.usage, usage(45, 5));
    const [cut, answer] = result.cascade.attempts;
    assert.equal(cut!.cost_usd, costOfUsage(model, usage(20, 3)));
    assert.equal(answer!.cost_usd, costOfUsage(model, usage(25, 2)));
    assert.deepEqual(answer!.continued_from, { deployment: 'm@a', chars: 11 });
    assert.equal(result.cascade.cost_usd, costOfUsage(model, usage(45, 5)));
  });
});

describe('the farm continues a partial answer', () => {
  const chat = (messages: { role: string; prefix?: boolean }[], body: object = {}) => ({ messages, ...body });
  it('recognises the vLLM and the DeepSeek/Mistral request shapes, and nothing else', () => {
    const conversation = [{ role: 'user' }, { role: 'assistant' }];
    assert.deepEqual(continuationOf(chat(conversation, { continue_final_message: true, add_generation_prompt: false }), 'Hi'), { style: 'vllm', prefix: 'Hi' });
    assert.deepEqual(continuationOf(chat([{ role: 'user' }, { role: 'assistant', prefix: true }]), 'Hi'), { style: 'prefix', prefix: 'Hi' });
    assert.equal(continuationOf(chat(conversation), 'Hi'), null, 'a plain assistant message last is a finished turn');
  });

  it('refuses what the real servers refuse (400)', () => {
    const bad = [
      chat([{ role: 'user' }, { role: 'assistant' }], { continue_final_message: true }), // vLLM: add_generation_prompt defaults to true
      chat([{ role: 'user' }], { continue_final_message: true, add_generation_prompt: false }),
      chat([{ role: 'assistant', prefix: true }, { role: 'user' }]),
    ];
    for (const c of bad)
      assert.throws(
        () => continuationOf(c, 'x'),
        (e: unknown) => e instanceof FarmHttpError && e.status === 400,
      );
  });

  const recorded = {
    text: 'The answer is 4.',
    tokens: ['The', ' answer', ' is', ' 4.'].map((text) => ({ text })),
    inputTokens: 10,
    outputTokens: 8,
    finishReason: 'stop' as const,
    simulated: false,
  };
  it('answers the recorded remainder when the recording starts with the prefix (also mid-token)', () => {
    const rest = continueAnswer(recorded, 'The answer');
    assert.equal(rest.matched, true);
    assert.equal(rest.answer.text, ' is 4.');
    assert.deepEqual(
      rest.answer.tokens.map((t) => t.text),
      [' is', ' 4.'],
    );
    assert.equal(rest.answer.outputTokens, 4);
    assert.equal(
      continueAnswer(recorded, 'The ans')
        .answer.tokens.map((t) => t.text)
        .join('|'),
      'wer| is| 4.',
    );
  });

  it('continues foreign text synthetically, marked, deterministically', () => {
    const a = continueAnswer(recorded, 'Let me think step by step');
    assert.equal(a.matched, false);
    assert.ok(a.answer.text.startsWith(SIMULATED_CONTINUATION) && a.answer.simulated);
    assert.equal(a.answer.text, continueAnswer(recorded, 'Let me think step by step').answer.text);
  });
});
