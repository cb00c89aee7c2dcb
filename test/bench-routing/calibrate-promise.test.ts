import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { calibrate } from '../../evaluators/calibrate.js';
import { syntheticRows, writeSyntheticDataset } from '../evaluators/synthetic.js';
import { trueShare } from './promise-oracle.js';

const quiet = () => {};
const noHeads = (file: string) => join(file, '..', 'none.json');

/**
 * Calibrates on `seeds` independent samples of `n` prompts and measures each chosen policy's true
 * quality share on 40,000 fresh prompts from the same distribution.
 */
async function coverage(confidence: number, seeds: number, n: number, target: number) {
  const population = syntheticRows({ models: 3, rows: 40000, seed: 999, signal: 'logprob' });
  let held = 0;
  let costShare = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const { file } = writeSyntheticDataset({ models: 3, rows: n, seed, signal: 'logprob', split: 'train' });
    const result = await calibrate({ data: file, target, confidence, log: quiet, manifest: noHeads(file) });
    assert.equal(result.signals[0]!.chosen, 'logprob', 'the only informative signal is chosen');
    const truth = trueShare(result.policy, population, 'synth/model-c');
    if (truth.share >= target) held++;
    costShare += truth.costShare;
  }
  return { rate: held / seeds, costShare: costShare / seeds };
}

describe('calibration promise (synthetic data, true quality known)', () => {
  it('holds on fresh prompts at about the promised rate, and a point estimate does not', async () => {
    const promised = await coverage(0.9, 30, 300, 0.95);
    // Nominal 0.9 over 30 samples: 0.8 allows two standard deviations of sampling noise.
    assert.ok(promised.rate >= 0.8, `target held in ${promised.rate} of the samples`);
    assert.ok(promised.costShare < 0.75, `the promise is not vacuous: cost share ${promised.costShare}`);
    // Confidence 0.5 is the median of the bootstrap: choosing on the estimate misses far more often.
    const estimate = await coverage(0.5, 30, 300, 0.95);
    assert.ok(estimate.rate < promised.rate - 0.2, `estimate-based ${estimate.rate} vs bound-based ${promised.rate}`);
    assert.ok(estimate.costShare < promised.costShare);
  });

  it('says when the data is too small and how many prompts a cheaper policy needs', async () => {
    const { file } = writeSyntheticDataset({ models: 3, rows: 60, seed: 7, signal: 'logprob', split: 'train' });
    const result = await calibrate({ data: file, target: 0.97, confidence: 0.95, log: quiet, manifest: noHeads(file) });
    assert.equal(result.promise.promised, true);
    const sf = result.promise.shortfall;
    assert.ok(sf, 'a cheaper policy met the target on the estimate only');
    assert.ok(sf.share.estimate >= 0.97 && sf.share.lower < 0.97);
    assert.ok(sf.prompts_needed > 60, `${sf.prompts_needed}`);
    assert.ok(sf.cost_share_of_best < result.expected.cost_share_of_best);
  });
});

describe('calibration search space', () => {
  it('tries every model alone: a cheap model that is also the best wins as one step, dominated models pruned', async () => {
    const acc = [0.93, 0.6, 0.8, 0.7];
    const { file } = writeSyntheticDataset({ models: 4, rows: 400, seed: 3, accuracy: (k) => acc[k]!, split: 'train' });
    const result = await calibrate({ data: file, target: 0.98, log: quiet, manifest: noHeads(file) });
    assert.deepEqual(
      result.policy.steps.map((s) => s.model),
      ['synth/model-a'],
    );
    assert.deepEqual(result.pruned.sort(), ['synth/model-b', 'synth/model-c', 'synth/model-d']);
    assert.equal(result.best_single.model, 'synth/model-a');
  });
});
