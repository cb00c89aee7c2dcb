/**
 * Streaming evaluation (evaluators/prefix.ts): each rule on hand-made prefixes, and on every
 * recorded answer of the shared data the certain rules never stop an answer that the step's full
 * evaluator would have accepted.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createPrefixJudge, DEFAULT_EARLY_ABORT, jsonPrefixVerdict } from '../../evaluators/prefix.js';
import { createEvaluator, evaluatorSpecSchema } from '../../evaluators/index.js';
import { cancelledCallCost, earlyAbortOptions, hedgeReason, savedByEarlyStop } from '../../workflows/policy.js';
import type { ModelInfo } from '../../common/types.js';

const user = (content: string) => [{ role: 'user', content }];
/** Feeds text in word-sized deltas; returns the reason and how many characters it had read. */
function feed(judge: ReturnType<typeof createPrefixJudge>, text: string): { reason: string | null; at: number } {
  let at = 0;
  for (const piece of text.match(/\S*\s*/g)!.filter(Boolean)) {
    at += piece.length;
    const reason = judge!.push(piece);
    if (reason) return { reason, at };
  }
  return { reason: null, at };
}

describe('prefix rules', () => {
  it('JSON: a prefix that can still become one JSON value is ok; a syntax error or trailing text is broken', () => {
    for (const ok of ['', '{', '{"a"', '{"a": [1, 2', '{"a": "x\\"y', '[tr', '{"a": -1.5e', '  {"a": {"b": null}}  '])
      assert.equal(jsonPrefixVerdict(ok), 'ok', ok);
    for (const bad of ['Sure', '{"a" 1', '{"a": 1,,', '[1 2', '{"a": 1} and more', '}', '{"a": tru e', '[1,]x'])
      assert.equal(jsonPrefixVerdict(bad), 'broken', bad);
  });

  it('JSON rule only when JSON was asked for, and never while a code fence may still wrap it', () => {
    const spec = { type: 'validators' };
    const json = createPrefixJudge(spec, 0.5, { messages: user('x'), responseFormat: { type: 'json_object' } })!;
    assert.match(feed(json, '{"name": "a"} Hope this helps!').reason ?? '', /JSON/);
    const fenced = createPrefixJudge(spec, 0.5, { messages: user('x'), responseFormat: { type: 'json_object' } })!;
    assert.equal(feed(fenced, 'Here you go: ```json\n{"a": 1}\n```').reason, null);
    const prose = createPrefixJudge(spec, 0.5, { messages: user('Tell me a story') })!;
    assert.equal(feed(prose, 'Once upon a time {not json}').reason, null);
  });

  it('refusal: only a complete phrase in the opening', () => {
    const judge = () => createPrefixJudge({ type: 'validators' }, 0.5, { messages: user('x') })!;
    assert.match(feed(judge(), "I'm sorry, I can't help with that request.").reason ?? '', /refusal/);
    assert.equal(feed(judge(), `${'word '.repeat(80)} I cannot help noticing`).reason, null, 'late mentions are not refusals');
    assert.equal(judge().push('I cannot help'), null, 'the phrase may still continue ("helpful")');
  });

  it('arithmetic: a wrong computation on a finished line; a right one is not enough to stop', () => {
    const spec = { type: 'min', of: [{ type: 'validators' }, { type: 'arithmetic', when_unchecked: 0.6 }] };
    const wrong = createPrefixJudge(spec, 0.5, { messages: user('x') })!;
    const r = feed(wrong, '16 - 3 = 13\n13 * 2 = 27\nso the total is 27 and then more text follows here');
    assert.match(r.reason ?? '', /wrong computation/);
    assert.ok(r.at < 40, 'stopped at the end of the wrong line');
    const right = createPrefixJudge(spec, 0.5, { messages: user('x') })!;
    assert.equal(feed(right, '16 - 3 = 13\n13 * 2 = 26\n#### 26').reason, null);
  });

  it('logprob: judged only after enough tokens, and only far below the threshold', () => {
    const judge = createPrefixJudge({ type: 'logprob' }, 0.8, { messages: user('x') }, { ...DEFAULT_EARLY_ABORT, logprob_min_tokens: 4 })!;
    assert.equal(judge.push('a', [-3]), null, 'too early to tell');
    assert.equal(judge.push('b', [-3]), null);
    assert.equal(judge.push('c', [-3]), null);
    assert.match(judge.push('d', [-3]) ?? '', /running logprob confidence 0\.05/);
    const sure = createPrefixJudge({ type: 'logprob' }, 0.8, { messages: user('x') }, { ...DEFAULT_EARLY_ABORT, logprob_min_tokens: 2 })!;
    assert.equal(sure.push('a', [-0.3]) ?? sure.push('b', [-0.3]), null, 'exp(-0.3) = 0.74 is within the margin of 0.8');
  });

  it('length budget, and no judge at all for evaluators that need the whole answer', () => {
    const judge = createPrefixJudge({ type: 'answer-model', model_file: 'x' }, 0.5, { messages: user('x') }, { ...DEFAULT_EARLY_ABORT, max_tokens: 3 })!;
    assert.equal(feed(judge, 'one two three').reason, null);
    assert.match(judge.push(' four') ?? '', /budget of 3 tokens/);
    assert.equal(createPrefixJudge({ type: 'answer-model', model_file: 'x' }, 0.5, { messages: user('x') }), null);
    assert.equal(createPrefixJudge({ type: 'validators' }, 0, { messages: user('x') }), null, 'threshold 0 accepts everything');
  });
});

describe('the certain rules agree with the full evaluator on recorded answers', () => {
  it('every early stop of the default policy step on GSM8K and MT-Bench answers is an answer the evaluator rejects', async () => {
    const spec = evaluatorSpecSchema.parse({ type: 'min', of: [{ type: 'validators' }, { type: 'arithmetic', when_unchecked: 0.6 }] });
    const evaluator = await createEvaluator(spec);
    let stopped = 0;
    let answers = 0;
    let charsSaved = 0;
    for (const file of ['gsm8k', 'mt_bench']) {
      const rows = readFileSync(new URL(`../../../shared/data/routellm/${file}.jsonl`, import.meta.url), 'utf8')
        .split('\n')
        .filter(Boolean);
      for (const line of rows) {
        const row = JSON.parse(line) as { prompt: string; models: Record<string, { response?: string }> };
        for (const [model, outcome] of Object.entries(row.models)) {
          const answer = outcome.response;
          if (!answer) continue;
          answers++;
          const judge = createPrefixJudge(spec, 0.5, { messages: user(row.prompt) })!;
          const r = feed(judge, answer);
          if (!r.reason) continue;
          stopped++;
          charsSaved += answer.length - r.at;
          const full = await evaluator.evaluate({ messages: user(row.prompt), answer, model, step: 1, finishReason: 'stop' });
          assert.ok(full.confidence < 0.5, `stopped (${r.reason}) an answer the evaluator accepts (${full.confidence})`);
        }
      }
    }
    assert.ok(stopped > 0 && answers > 1000, `${stopped} of ${answers} answers stopped early`);
    assert.ok(charsSaved > 0);
  });
});

describe('latency decisions (workflows/policy.ts)', () => {
  const model = { name: 'm', inputUsdPer1M: 1, outputUsdPer1M: 2, p50LatencyMs: 1000, expectedOutputTokens: 100 } as ModelInfo;

  it('hedges on a low pre-router probability or a deadline that cannot fit both steps, never without a hedge option', () => {
    const base = { pAccept: 0.3, remainingMs: 10_000, thisMs: 3000, nextMs: 4000 };
    assert.equal(hedgeReason({ ...base, hedge: undefined }), null);
    assert.match(hedgeReason({ ...base, hedge: { below_p: 0.5 } }) ?? '', /P\(accept\) 0\.30 < 0\.5/);
    assert.equal(hedgeReason({ ...base, pAccept: 0.7, hedge: { below_p: 0.5 } }), null);
    assert.equal(hedgeReason({ ...base, hedge: { on_deadline: true } }), null, '7 s fit in 10 s');
    assert.match(hedgeReason({ ...base, remainingMs: 6000, hedge: { on_deadline: true } }) ?? '', /exceed the 6000 ms left/);
  });

  it('estimates what an early stop saved and what a cancelled call cost', () => {
    assert.deepEqual(savedByEarlyStop(model, { usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 }, latencyMs: 500, firstTokenMs: 100 }), {
      tokens: 80,
      ms: 1600,
    });
    assert.equal(cancelledCallCost(model, 1000), (1000 * 1 + 100 * 2) / 1e6, 'a whole typical answer: never under-counted');
    assert.equal(cancelledCallCost(model, 1000, 30), (1000 * 1 + 30 * 2) / 1e6, 'or max_tokens when smaller');
  });

  it('early abort is on by default and can be turned off per step', () => {
    assert.deepEqual(earlyAbortOptions({ model: 'm', evaluator: { type: 'validators' }, threshold: 0.5 }), DEFAULT_EARLY_ABORT);
    assert.equal(earlyAbortOptions({ model: 'm', evaluator: { type: 'validators' }, threshold: 0.5, early_abort: false }), null);
  });
});

describe('offline latency model (bench/lib/latency-model.ts)', () => {
  it('first token plus tokens at the pool rate, the preferred pool first, and interpolated percentiles', async () => {
    const { latencyFromTimings, latencyStats } = await import('../../bench/lib/latency-model.js');
    const model = latencyFromTimings({ m: { ttft_ms: 900, tokens_per_s: 15 }, 'fast/m': { ttft_ms: 150, tokens_per_s: 60 } });
    assert.deepEqual(model('m', 31), { ttftMs: 900, totalMs: 900 + 2000 });
    assert.deepEqual(model('m', 61, 'fast'), { ttftMs: 150, totalMs: 150 + 1000 });
    assert.equal(model('other', 10), null);
    const stats = latencyStats(Array.from({ length: 100 }, (_, i) => ({ latency: i + 1, ttft: 1 })));
    assert.deepEqual(stats, { latency_p50_ms: 50.5, latency_p99_ms: 99.01, ttft_p50_ms: 1, ttft_p99_ms: 1 });
  });
});
