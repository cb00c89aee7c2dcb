/**
 * The cross-fitted promise (evaluators/calibration/crossfit.ts) where the truth is known
 * (bench/lib/correlated-steps.ts: errors correlated through a per-prompt difficulty), each chosen
 * policy's true quality share measured on 20,000 fresh prompts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { correlatedSteps as correlated } from '../../bench/lib/correlated-steps.js';
import { normalQuantile, pairedShare, predictionInterval, promiseSearch, tQuantile } from '../../evaluators/calibration/crossfit.js';
import { simulate, type StepData } from '../../evaluators/calibration/search.js';

describe('cross-fitted promise (pure)', () => {
  it('quantiles match the tables', () => {
    assert.ok(Math.abs(normalQuantile(0.975) - 1.959964) < 1e-5);
    assert.ok(Math.abs(normalQuantile(0.05) + 1.644854) < 1e-5);
    assert.ok(Math.abs(tQuantile(0.975, 10) - 2.228) < 0.005, `${tQuantile(0.975, 10)}`);
    assert.ok(Math.abs(tQuantile(0.95, 28) - 1.701) < 0.002, `${tQuantile(0.95, 28)}`);
  });

  it('a policy identical to the reference on few prompts still gets an interval, which narrows with data and widens for a small test set', () => {
    const ones = (n: number) => Float64Array.from({ length: n }, (_, i) => (i % 4 === 0 ? 0 : 1));
    const small = pairedShare(ones(30), ones(30), 0.95);
    const large = pairedShare(ones(3000), ones(3000), 0.95);
    assert.equal(small.estimate, 1);
    assert.ok(small.lower < 0.97, `30 identical prompts do not prove 0.97: ${small.lower}`);
    assert.ok(small.interval[0] < 1 && small.interval[1] > 1);
    assert.ok(large.lower > 0.995 && large.lower < 1, `${large.lower}`);
    const pi51 = predictionInterval(small, 51, 0.95);
    const piBig = predictionInterval(small, 1e9, 0.95);
    assert.ok(pi51[0] < small.interval[0] && pi51[1] > small.interval[1]);
    assert.ok(Math.abs(piBig[0] - small.interval[0]) < 1e-6);
  });

  it("holds its bound on fresh prompts where the search's in-sample bootstrap does not", () => {
    const population = correlated(3, 20000, 424242);
    const trueShare = (steps: StepData[], chosen: Parameters<typeof simulate>[1], reference: number) => {
      const p = new Float64Array(steps[0]!.cost.length);
      simulate(steps, chosen, p);
      return p.reduce((a, b) => a + b, 0) / steps[reference]!.quality.reduce((a, b) => a + b, 0);
    };
    const seeds = 30;
    const held = { crossFitted: 0, inSample: 0 };
    let cheaper = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const cal = correlated(3, 100, seed * 7 + 1);
      const reference = 2;
      const opts = { target: 0.98, confidence: 0.95, maxSteps: 3, reference, tieTolerance: 0.01 * cal[reference]!.meanCost };
      const fitted = promiseSearch(cal, { ...opts, folds: 5 });
      const inSample = promiseSearch(cal, { ...opts, folds: 0 });
      assert.ok(fitted.promised);
      if (trueShare(population, fitted.chosen, reference) >= fitted.share.lower - 1e-12) held.crossFitted++;
      if (trueShare(population, inSample.chosen, reference) >= inSample.share.lower - 1e-12) held.inSample++;
      if (fitted.chosen.ladder.length > 1 || fitted.chosen.ladder[0] !== reference) cheaper++;
    }
    // Nominal 0.95 over 30 samples: 0.85 allows for sampling noise; the in-sample bootstrap held in 0.3 in scratch runs.
    assert.ok(held.crossFitted >= 0.85 * seeds, `cross-fitted bound held in ${held.crossFitted} of ${seeds}`);
    assert.ok(held.inSample <= 0.6 * seeds, `in-sample bound held in ${held.inSample} of ${seeds}`);
    console.log(
      `# bound held: cross-fitted ${held.crossFitted}/${seeds} (a cheaper policy than the reference in ${cheaper}), in-sample ${held.inSample}/${seeds}`,
    );
  });
});

describe('cross-fitted promise on tiny data', () => {
  it('three prompts: no fold to choose on, so nothing cheaper than the reference is promised', () => {
    const steps = correlated(3, 3, 11);
    const res = promiseSearch(steps, { target: 0.9, confidence: 0.95, maxSteps: 2, reference: 2, tieTolerance: 0, folds: 5 });
    assert.equal(res.rounds, 0);
    assert.ok(Number.isFinite(res.share.se));
    assert.deepEqual(res.chosen.ladder, [2], 'the reference alone');
    assert.equal(res.share.lower, 1);
    assert.ok(res.firstRound.lower < 0.9, `three prompts prove nothing cheaper: ${res.firstRound.lower}`);
  });
});
