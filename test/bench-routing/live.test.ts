/**
 * Live/offline agreement: prompts sent through the real stack (API → Temporal → pool workers →
 * farm replaying the dataset) are decided exactly as the offline replay decides them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { REPO_ROOT } from '../../config/load.js';
import { loadPolicyFile } from '../../bench/lib/run.js';
import { runLive } from '../../bench/lib/live.js';

describe('routing benchmark, live mode', () => {
  it('reproduces the offline decisions of the calibrated GSM8K policy', async () => {
    const policy = await loadPolicyFile(join(REPO_ROOT, 'evaluators', 'policies', 'gsm8k.calibrated.yaml'));
    const result = await runLive({ data: join(REPO_ROOT, '..', 'shared', 'data', 'routellm', 'gsm8k.jsonl'), policy, split: 'test', n: 24 });
    assert.equal(result.agreement.compared, 24);
    assert.deepEqual(result.agreement.missing, []);
    assert.deepEqual(result.agreement.mismatches, []);
    // Not a vacuous agreement: the sample has both accepted and escalated prompts.
    const finals = new Set(result.live.map((d) => d.final_step));
    assert.ok(finals.has(1) && finals.has(2), `final steps seen: ${[...finals]}`);
    assert.ok(result.live.every((d) => d.steps[0]!.confidence !== null));
  });
});
