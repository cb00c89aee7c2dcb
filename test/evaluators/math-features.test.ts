import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkArithmetic } from '../../evaluators/arithmetic.js';
import { ANSWER_FEATURE_NAMES, answerFeatures, FEATURE_GROUPS } from '../../evaluators/features.js';
import { MATH_FEATURE_NAMES, mathFeatures } from '../../evaluators/math-features.js';
import { answerTrainingLabel } from '../../evaluators/train/train.js';

const f = (prompt: string, answer: string) => {
  const v = mathFeatures(prompt, answer);
  return Object.fromEntries(MATH_FEATURE_NAMES.map((n, i) => [n, v[i]!])) as Record<(typeof MATH_FEATURE_NAMES)[number], number>;
};

const Q =
  "Janet's ducks lay 16 eggs per day. She eats three for breakfast and bakes muffins with four. She sells the rest for $2 per egg. How much does she make?";

describe('math features', () => {
  it('coverage counts word numbers and the quantities a computation uses', () => {
    const good = f(Q, 'She has 16 - 3 = 13 eggs, then 13 - 4 = 9 eggs.\nShe makes 9 * $2 = $<<9*2=18>>18.\n#### 18');
    assert.equal(good.m_digit_coverage_operands, 1);
    assert.equal(good.m_word_coverage, 1);
    assert.equal(good.m_final_is_last_result, 1);
    assert.equal(good.m_foreign_operands, 0);
    assert.equal(good.m_no_marker, 0);
    // Skips "four" and the price: both coverages drop.
    const skip = f(Q, 'She has 16 - 3 = 13 eggs left.\n#### 13');
    assert.ok(skip.m_word_coverage < 1);
    assert.ok(skip.m_digit_coverage_operands < 1);
  });

  it('chain provenance: operands from nowhere, finals that are not the last result, wrong and non-integer steps', () => {
    const v = f(Q, 'She has 16 - 7 = 9 eggs.\nShe makes 9 * 37 = 333.\nSo 333 / 2 = 166.5\n#### 170');
    assert.ok(v.m_foreign_operands > 0, 'nothing in the question gives 37');
    assert.equal(v.m_final_is_last_result, 0);
    assert.equal(v.m_final_from_nowhere, 1);
    assert.ok(v.m_nonint_results > 0);
    const wrong = f(Q, '16 - 3 = 12\n12 - 4 = 8\n#### 8');
    assert.ok(wrong.m_wrong_share > 0);
    assert.equal(f(Q, '#### 7.5').m_final_nonint, 1);
  });

  it('ending: no marker and an open expression (a truncated answer)', () => {
    const v = f(Q, 'She has 16 - 3 = 13 eggs, then <<13-4');
    assert.equal(v.m_no_marker, 1);
    assert.equal(v.m_open_ended, 1);
  });

  it('percentages and fractions in the question match their factors in the answer', () => {
    const v = f('A $80 shirt is 25% off and 1/4 of people buy it. Price?', '80 * 0.75 = 60\n60 * 0.25 = 15\n#### 60');
    assert.equal(v.m_digit_coverage_operands, 1);
  });

  it('every feature group names real features and the math features are part of the answer vector', () => {
    for (const names of Object.values(FEATURE_GROUPS))
      for (const n of names) assert.ok(ANSWER_FEATURE_NAMES.includes(n as (typeof ANSWER_FEATURE_NAMES)[number]), n);
    const v = answerFeatures({ messages: [{ role: 'user', content: Q }], answer: '16 - 3 = 13\n#### 13', model: 'm', step: 1 });
    assert.equal(v.length, ANSWER_FEATURE_NAMES.length);
    assert.ok(v.every(Number.isFinite));
  });

  it('a long line of numbers without "=" is not scanned for chains (it used to take ~20 ms)', () => {
    const list = Array.from({ length: 400 }, (_, i) => `-${i}`).join(', ');
    const t0 = performance.now();
    const r = checkArithmetic(`x + 5 < 10\n${list}\n2 + 2 = 4`);
    mathFeatures('How many integers satisfy |x + 5| < 10?', list);
    assert.ok(performance.now() - t0 < 50);
    assert.equal(r.checked, 1);
  });
});

describe('answer training label', () => {
  it("'not-worse' also counts a wrong answer as fine when the best model is wrong too; 'correct' is the answer's own label", () => {
    const row = (weak: boolean, best: boolean) => ({
      id: 'r',
      dataset: 'd',
      split: 'train',
      subset: null,
      prompt: 'p',
      reference: null,
      models: {
        w: { response: 'a', correct: weak, score: null, inputTokens: null, outputTokens: null, costUsd: null, logprob: null, latencyMs: null },
        b: { response: 'a', correct: best, score: null, inputTokens: null, outputTokens: null, costUsd: null, logprob: null, latencyMs: null },
      },
    });
    assert.equal(answerTrainingLabel(row(false, false), 'w', 'b', 'not-worse'), true);
    assert.equal(answerTrainingLabel(row(false, true), 'w', 'b', 'not-worse'), false);
    assert.equal(answerTrainingLabel(row(false, false), 'w', 'b', 'correct'), false);
    assert.equal(answerTrainingLabel(row(false, false), 'b', 'b', 'not-worse'), false, "the best model's own head keeps its label");
  });
});
