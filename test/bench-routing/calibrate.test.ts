import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { calibrate } from '../../evaluators/calibrate.js';
import { loadPolicyFile, runRoutingBenchmark } from '../../bench/lib/run.js';
import { writeSyntheticDataset } from '../evaluators/synthetic.js';

const quiet = () => {};

async function calibrateAndReplay(file: string, opts: { target?: number; maxCost?: number; split: string }) {
  const result = await calibrate({
    data: file,
    split: 'train',
    target: opts.target,
    maxCost: opts.maxCost,
    log: quiet,
    manifest: join(file, '..', 'none.json'),
  });
  const policyFile = join(file, '..', `policy-${opts.target ?? opts.maxCost}.yaml`);
  writeFileSync(policyFile, YAML.stringify(result.policy));
  const policy = await loadPolicyFile(policyFile);
  const train = await runRoutingBenchmark({ data: file, policy, split: 'train', sweepSize: 10 });
  const test = await runRoutingBenchmark({ data: file, policy, split: opts.split, sweepSize: 10 });
  return { result, train: train.report, test: test.report, decisions: test.decisions };
}

describe('calibration on synthetic data with a known answer', () => {
  it('meets a quality target at a fraction of the best model cost (3 models, perfect arithmetic check)', async () => {
    const { file } = writeSyntheticDataset({ models: 3, rows: 600 });
    const { result, train, test } = await calibrateAndReplay(file, { target: 0.99, split: 'test' });
    assert.ok(result.expected.feasible);
    assert.equal(result.policy.steps[0]!.evaluator.type, 'arithmetic');
    // The search's estimate is exactly what the workflow's runCascade does on the same split.
    assert.ok(Math.abs(train.summary.quality - result.expected.quality) < 1e-9, `${train.summary.quality} vs ${result.expected.quality}`);
    // The workflow rounds every amount to 1e-10 $ (workflows/policy.ts roundUsd); a request of at
    // most two calls differs from the search's unrounded arithmetic by at most 1e-10 $.
    assert.ok(
      Math.abs(train.summary.cost_per_request_usd - result.expected.cost_per_request) <= 1e-10,
      `${train.summary.cost_per_request_usd} vs ${result.expected.cost_per_request}`,
    );
    // The evaluator is perfect, so the target holds on the other split too, far below the best model's cost.
    assert.ok(test.summary.quality_share_of_best >= 0.99, `test quality share ${test.summary.quality_share_of_best}`);
    assert.ok(test.summary.cost_share_of_best < 0.6, `test cost share ${test.summary.cost_share_of_best}`);
    assert.equal(test.summary.false_accept_rate, 0);
    assert.equal(test.step_auroc[0]!.auroc, 1);
  });

  it('respects a cost cap', async () => {
    const { file } = writeSyntheticDataset({ models: 3, rows: 400 });
    const cap = 1.2e-4; // between the cheapest (5e-5) and the best (5e-4) model
    const { result, train } = await calibrateAndReplay(file, { maxCost: cap, split: 'test' });
    assert.ok(result.expected.feasible);
    assert.ok(train.summary.cost_per_request_usd <= cap + 1e-15);
  });

  it('stays fast with 12 models and graded labels', async () => {
    const { file } = writeSyntheticDataset({ models: 12, rows: 300, graded: true });
    const started = Date.now();
    const result = await calibrate({ data: file, split: 'train', target: 0.97, log: quiet, manifest: join(file, '..', 'none.json') });
    const seconds = (Date.now() - started) / 1000;
    assert.ok(result.candidates_evaluated > 1000);
    assert.ok(seconds < 60, `calibration took ${seconds} s`); // generous: only catches a blow-up
    const policyFile = join(file, '..', 'p12.yaml');
    writeFileSync(policyFile, YAML.stringify(result.policy));
    const { report } = await runRoutingBenchmark({ data: file, policy: await loadPolicyFile(policyFile), split: 'test', sweepSize: 5 });
    assert.equal(report.baselines.single.length, 12);
    assert.ok(report.summary.quality > 0);
  });
});
