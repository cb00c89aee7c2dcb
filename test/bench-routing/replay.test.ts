import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { compareDecisions } from '../../bench/lib/agreement.js';
import { loadPolicyFile, runRoutingBenchmark } from '../../bench/lib/run.js';
import { writeSyntheticDataset } from '../evaluators/synthetic.js';

async function policyFile(dir: string, models: string[], threshold: number): Promise<string> {
  const file = join(dir, `p-${threshold}.yaml`);
  writeFileSync(
    file,
    YAML.stringify({
      name: 'synthetic',
      steps: [
        { model: models[0], evaluator: { type: 'min', of: [{ type: 'validators' }, { type: 'arithmetic' }] }, threshold },
        { model: models[2], evaluator: { type: 'none' }, threshold: 0 },
      ],
      evaluate_last_step: false,
      deadline_ms: 60000,
      max_cost_usd: 1,
    }),
  );
  return file;
}

describe('offline replay through runCascade', () => {
  it('decisions follow the evaluator and the threshold; metrics add up', async () => {
    const { file, models } = writeSyntheticDataset({ models: 3, rows: 200 });
    const policy = await loadPolicyFile(await policyFile(join(file, '..'), models, 0.9));
    const { report, decisions } = await runRoutingBenchmark({ data: file, policy, split: 'all', sweepSize: 8 });
    assert.equal(decisions.length, 200);
    for (const d of decisions) {
      const first = d.steps.find((s) => s.step === 1)!;
      assert.ok(first.confidence === 0 || first.confidence === 1);
      assert.equal(d.final_model, first.confidence === 1 ? models[0] : models[2]);
    }
    // Perfect evaluator: nothing wrong is accepted, nothing right is escalated.
    assert.equal(report.summary.false_accept_rate, 0);
    assert.equal(report.summary.unnecessary_escalation_rate, 0);
    assert.equal(report.step_auroc[0]!.auroc, 1);
    assert.ok(report.two_model && report.two_model.apgr > 0.75, `APGR ${report.two_model?.apgr}`);
    assert.ok(report.sweep.length >= 2);
    const perRequest = decisions.reduce((s, d) => s + d.cost_usd, 0) / decisions.length;
    assert.ok(Math.abs(perRequest - report.summary.cost_per_request_usd) < 1e-15);
  });

  it('live/offline agreement: identical runs agree, a changed decision is reported', async () => {
    const { file, models } = writeSyntheticDataset({ models: 3, rows: 60 });
    const policy = await loadPolicyFile(await policyFile(join(file, '..'), models, 0.9));
    const a = await runRoutingBenchmark({ data: file, policy, split: 'all', sweepSize: 0 });
    const b = await runRoutingBenchmark({ data: file, policy, split: 'all', sweepSize: 0 });
    const same = compareDecisions(a.decisions, b.decisions.slice(0, 20));
    assert.deepEqual(same, { compared: 20, agreeing: 20, missing: [], mismatches: [] });
    const changed = structuredClone(b.decisions.slice(0, 5));
    changed[2]!.final_model = 'other';
    changed[3]!.steps[0]!.confidence = 0.5;
    const diff = compareDecisions(a.decisions, changed);
    assert.equal(diff.agreeing, 3);
    assert.deepEqual(diff.mismatches.map((m) => m.field).sort(), ['final_model', 'step 1 confidence']);
  });
});

describe('committed calibrated policies', () => {
  it('parse with the config schema and name model files that exist', async () => {
    const { readdirSync, existsSync } = await import('node:fs');
    const { REPO_ROOT } = await import('../../evaluators/head.js');
    const dir = join(REPO_ROOT, 'evaluators/policies');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    assert.ok(files.length >= 2);
    for (const f of files) {
      const policy = await loadPolicyFile(join(dir, f));
      assert.ok(policy.steps.length >= 1);
      for (const s of policy.steps)
        if (s.evaluator.type === 'answer-model') assert.ok(existsSync(join(REPO_ROOT, String(s.evaluator.model_file))), `${f}: ${s.evaluator.model_file}`);
      if (policy.prerouter) assert.ok(existsSync(join(REPO_ROOT, policy.prerouter.model_file)));
    }
  });
});
