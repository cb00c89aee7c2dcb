import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createEvaluator, evaluatorSpecSchema, type EvaluationInput } from '../../evaluators/index.js';
import { checkArithmetic, createArithmeticEvaluator, evalExpression } from '../../evaluators/arithmetic.js';
import { buildJudgeMessages, parseJudgeVerdict } from '../../evaluators/judge-prompt.js';
import { extractFinalAnswer } from '../../evaluators/text.js';
import { ANSWER_FEATURE_NAMES, answerFeatures, PROMPT_FEATURE_NAMES, promptFeatures } from '../../evaluators/features.js';

const inputs: EvaluationInput[] = [
  { messages: [{ role: 'user', content: 'What is 16 - 3 - 4 times 2?' }], answer: '16 - 3 = 13\n13 - 4 = 9\n9 * 2 = 18\n#### 18', model: 'm', step: 1 },
  {
    messages: [{ role: 'user', content: 'What is 2 + 2?' }],
    answer: '2 + 2 = 5. The answer is 5.',
    model: 'm',
    step: 1,
    logprobs: [
      { token: 'a', logprob: -0.1 },
      { token: 'b', logprob: -2 },
    ],
  },
  { messages: [{ role: 'user', content: 'Write a poem' }], answer: "I'm sorry, I can't help with that.", model: 'm', step: 1, finishReason: 'stop' },
  { messages: [{ role: 'user', content: 'Describe X' }], answer: 'X is a', model: 'm', step: 1, finishReason: 'length' },
  {
    messages: [{ role: 'user', content: 'Give me a user' }],
    answer: '```json\n{"name": "ann", "age": 3}\n```',
    model: 'm',
    step: 1,
    responseFormat: { type: 'json_schema', schema: { type: 'object', required: ['name', 'age'], properties: { age: { type: 'integer' } } } },
  },
  {
    messages: [{ role: 'user', content: 'Give me a user' }],
    answer: '{"name": "ann"}',
    model: 'm',
    step: 1,
    responseFormat: { type: 'json_schema', schema: { type: 'object', required: ['name', 'age'] } },
  },
  { messages: [{ role: 'user', content: 'Return JSON with a list' }], answer: 'not json', model: 'm', step: 1 },
  { messages: [], answer: '', model: 'm', step: 0 },
  {
    messages: [{ role: 'user', content: 'x'.repeat(50_000) }],
    answer: '1'.repeat(20_000),
    model: 'm',
    step: 2,
    samples: ['1', '2'],
    judgeVerdict: 'Rating: [[7]]',
  },
];

const specs = [
  { type: 'none' },
  { type: 'logprob' },
  { type: 'validators' },
  { type: 'validators', checks: ['json'] },
  { type: 'arithmetic' },
  { type: 'self-consistency', samples: 3 },
  { type: 'judge', model: 'judge-model' },
  { type: 'min', of: [{ type: 'validators' }, { type: 'arithmetic' }] },
];

describe('evaluators', () => {
  for (const raw of specs) {
    it(`${JSON.stringify(raw)}: confidence in [0,1], reasons present, deterministic`, async () => {
      const ev = await createEvaluator(evaluatorSpecSchema.parse(raw));
      for (const input of inputs) {
        const a = await ev.evaluate(input);
        const b = await ev.evaluate(structuredClone(input));
        assert.ok(a.confidence >= 0 && a.confidence <= 1, `${ev.name}: ${a.confidence}`);
        assert.ok(a.reasons.length > 0);
        assert.deepEqual(a, b);
        for (const r of a.reasons) assert.ok(!r.includes('xxxxxxxx') && !r.includes('1111111111'), 'reasons never quote prompt or answer text');
      }
    });
  }

  it('rejects malformed specs with a named field', () => {
    assert.equal(evaluatorSpecSchema.safeParse({ type: 'self-consistency', samples: 1 }).success, false);
    assert.equal(evaluatorSpecSchema.safeParse({ type: 'answer-model' }).success, false);
    assert.equal(evaluatorSpecSchema.safeParse({ type: 'nope' }).success, false);
    assert.equal(evaluatorSpecSchema.safeParse({ type: 'none', extra: 1 }).success, false);
  });

  it('validators: JSON schema, refusal and truncation fail; valid JSON passes', async () => {
    const ev = await createEvaluator({ type: 'validators' });
    const c = async (i: number) => (await ev.evaluate(inputs[i]!)).confidence;
    assert.equal(await c(0), 1);
    assert.equal(await c(2), 0); // refusal
    assert.equal(await c(3), 0); // finish_reason: length
    assert.equal(await c(4), 1); // schema-valid JSON in a fence
    assert.equal(await c(5), 0); // missing required field
    assert.equal(await c(6), 0); // prompt asks for JSON, answer is not
  });

  it('logprob: exp(mean logprob), neutral when absent', async () => {
    const ev = await createEvaluator(evaluatorSpecSchema.parse({ type: 'logprob' }));
    assert.ok(Math.abs((await ev.evaluate(inputs[1]!)).confidence - Math.exp(-1.05)) < 1e-12);
    const absent = await ev.evaluate(inputs[0]!);
    assert.equal(absent.confidence, 0.5);
    assert.match(absent.reasons[0]!, /absent/);
  });

  it('arithmetic: re-checks shown computations, annotations and markdown escapes', () => {
    assert.equal(evalExpression('2/2 * 1/2'), 0.5);
    assert.equal(evalExpression('(3+4)*2'), 14);
    assert.equal(evalExpression('80,000 * 150%'), 120000);
    assert.deepEqual(checkArithmetic('16 - 3 = 13 eggs, then 13 - 4 = 9.\n#### 9'), {
      checked: 2,
      wrong: 0,
      finalMatchesLastResult: true,
      lastResult: 9,
      final: 9,
    });
    assert.equal(checkArithmetic('9 \\* $2 = $<<9*2=18>>18').wrong, 0);
    assert.equal(checkArithmetic('so 12 * 3 = 38 apples').wrong, 1);
    assert.equal(checkArithmetic('10 / 3 = 3.33').wrong, 0);
    assert.equal(checkArithmetic('no maths here').checked, 0);
  });

  it('arithmetic: the last result is the one written last, and the detail says what was compared', async () => {
    // gsm8k-test-0's recorded Mixtral answer: the annotation comes last in the text (it was scanned first).
    const janet = 'she has 16 - 3 = 13 eggs left.\nso she has 13 - 4 = 9 eggs left.\nShe sells them for 9 * $2 = $<<9*2=18>>18.\n#### 18';
    assert.deepEqual(checkArithmetic(janet), { checked: 3, wrong: 0, finalMatchesLastResult: true, lastResult: 18, final: 18 });
    const arithmetic = createArithmeticEvaluator({ whenUnchecked: 0.6 });
    assert.deepEqual(await arithmetic.evaluate({ answer: janet } as EvaluationInput), {
      confidence: 1,
      reasons: ['arithmetic: 3 of 3 shown steps recompute correctly', "arithmetic: final answer 18 is the last step's result"],
    });
    const roundedUp = await arithmetic.evaluate({ answer: 'It takes 2 + 1/2 = <<2+1/2=2.5>>2.5 bolts, so 3 in total.\n#### 3' } as EvaluationInput);
    assert.equal(roundedUp.confidence, 0.75);
    assert.deepEqual(roundedUp.reasons, ['arithmetic: 2 of 2 shown steps recompute correctly', "arithmetic: final answer 3 is not the last step's result 2.5"]);
  });

  it('self-consistency ignores the answer itself when the workflow passes it as samples[0]', async () => {
    const ev = await createEvaluator({ type: 'self-consistency', samples: 3 });
    const base = { messages: [{ role: 'user', content: 'q' }], answer: 'The answer is 4', model: 'm', step: 1 };
    assert.equal((await ev.evaluate({ ...base, samples: ['The answer is 4', '#### 4', 'The answer is 5'] })).confidence, 2 / 3);
    assert.equal((await ev.evaluate({ ...base, samples: ['#### 4', 'The answer is 5'] })).confidence, 2 / 3);
  });

  it('judge: reads ratings, escalates without a verdict', async () => {
    assert.equal(parseJudgeVerdict('Rating: [[10]] great'), 1);
    assert.equal(parseJudgeVerdict('I give it 4/10'), 3 / 9);
    assert.equal(parseJudgeVerdict('no idea'), null);
    const ev = await createEvaluator({ type: 'judge', model: 'j' });
    assert.equal((await ev.evaluate({ ...inputs[0]!, judgeVerdict: undefined })).confidence, 0);
  });

  it('feature vectors match their name lists and are finite', () => {
    for (const input of inputs) {
      const a = answerFeatures(input);
      assert.equal(a.length, ANSWER_FEATURE_NAMES.length);
      assert.ok(a.every(Number.isFinite));
      assert.equal(promptFeatures(input.messages[0]?.content ?? '').length, PROMPT_FEATURE_NAMES.length);
    }
    // Spot-check alignment: a binary feature only takes 0/1.
    const neg = ANSWER_FEATURE_NAMES.indexOf('a_final_negative');
    assert.equal(answerFeatures({ ...inputs[0]!, answer: '#### -5' })[neg], 1);
    assert.equal(answerFeatures({ ...inputs[0]!, answer: '#### 12.5 apples' })[ANSWER_FEATURE_NAMES.indexOf('a_final_raw_decimal')], 1);
  });

  it('final answers: markers, choices, numbers', () => {
    assert.equal(extractFinalAnswer('blah\n#### 1,234')?.value, '1234');
    assert.equal(extractFinalAnswer('The answer is (B).')?.value, 'B');
    assert.equal(extractFinalAnswer('so she has 7 left')?.numeric, 7);
  });

  it('judge-prompt.ts is pure (the workflow bundle imports it)', () => {
    const src = readFileSync(new URL('../../evaluators/judge-prompt.ts', import.meta.url), 'utf8');
    assert.doesNotMatch(src, /^\s*import\s/m);
    const msgs = buildJudgeMessages({ messages: [{ role: 'user', content: 'hi' }], answer: 'a'.repeat(100_000) });
    assert.equal(msgs.length, 2);
    assert.ok(msgs[1]!.content.length < 30_000, 'long answers are cut');
  });
});
