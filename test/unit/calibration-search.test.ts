import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { drawResamples, passes, promptsNeeded, resampledSums, shareInterval } from '../../evaluators/calibration/bound.js';
import { dominated, search, type StepData } from '../../evaluators/calibration/search.js';

const N = 400;
function step(name: string, cost: number, quality: (i: number) => number, conf: ((i: number) => number) | null): StepData {
  const q = Float64Array.from({ length: N }, (_, i) => quality(i));
  return {
    name,
    cost: new Float64Array(N).fill(cost),
    quality: q,
    has: new Uint8Array(N).fill(1),
    conf: conf ? Float64Array.from({ length: N }, (_, i) => conf(i)) : null,
    prerouter: null,
    meanCost: cost,
    meanQuality: q.reduce((a, b) => a + b, 0) / N,
  };
}

describe('calibration search (pure)', () => {
  it('prefers fewer steps among near-ties, and the cheaper ladder when it really saves', () => {
    // A answers 2 of 400 prompts (0.5%) with a perfect check; B is as good as the reference R and a bit cheaper.
    const a = step(
      'a',
      0.01,
      (i) => (i < 2 ? 1 : 0),
      (i) => (i < 2 ? 1 : 0),
    );
    const b = step('b', 99.5, () => 1, null);
    const r = step('r', 100, () => 1, null);
    const opts = { target: 0.99, confidence: 0.95, maxSteps: 2, reference: 2, tieTolerance: 1 };
    const tie = search([a, b, r], opts);
    assert.deepEqual(tie.chosen.ladder, [1], 'A -> B saves 0.5%: a near-tie, so B alone');
    // When A answers 20% of prompts the ladder saves 20%: it wins.
    const a20 = step(
      'a',
      0.01,
      (i) => (i < 80 ? 1 : 0),
      (i) => (i < 80 ? 1 : 0),
    );
    const saves = search([a20, b, r], opts);
    assert.deepEqual(saves.chosen.ladder, [0, 1]);
    assert.ok(saves.certified && saves.share.lower >= 0.99);
  });

  it('prunes dominated models but never the reference', () => {
    const cheapGood = step('cheap-good', 1, (i) => (i % 10 ? 1 : 0), null);
    const dearWorse = step('dear-worse', 5, (i) => (i % 5 ? 1 : 0), null);
    const ref = step('ref', 10, () => 1, null);
    assert.deepEqual([...dominated([cheapGood, dearWorse, ref], 2)], [1]);
    assert.deepEqual([...dominated([cheapGood, dearWorse, ref], 1)], []);
  });
});

describe('bootstrap bound (pure)', () => {
  it('passes exactly when the one-sided bound reaches the target, and estimates the prompts needed', () => {
    const n = 200;
    const res = drawResamples(n, 1000, 3);
    const ref = new Float64Array(n).fill(1);
    const p = Float64Array.from({ length: n }, (_, i) => (i % 20 === 0 ? 0 : 1)); // share 0.95
    const sums = resampledSums(res, p);
    const refSums = resampledSums(res, ref);
    const iv = shareInterval(sums, refSums, 0.95, 0.95);
    assert.ok(iv.lower < 0.95 && iv.interval[0] <= iv.lower && iv.interval[1] > 0.95);
    assert.equal(passes(sums, refSums, iv.lower, 0.95), true);
    assert.equal(passes(sums, refSums, iv.lower + 1e-6, 0.95), false);
    // The bound's width (~2.5 pt here) against a 1 pt margin: about (2.5/1)^2 = 6x the prompts.
    const needed = promptsNeeded(n, iv, 0.94);
    assert.ok(needed > 3 * n && needed < 12 * n, `${needed}`);
    assert.equal(promptsNeeded(n, iv, 0.96), Infinity);
  });
});
