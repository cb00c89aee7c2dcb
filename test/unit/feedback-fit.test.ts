/** Re-fitting thresholds from delayed labels (evaluators/calibration/feedback.ts) on synthetic traffic whose truth is known. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fitFromFeedback, MIN_FEEDBACK_REQUESTS, type LabelledRequest } from '../../evaluators/calibration/feedback.js';
import { labelledRow } from '../../evaluators/cli/calibrate-feedback.js';
import { seededRandom } from '../../common/random.js';

/** A two-step ladder at threshold 0.5: the cheap answer is good with probability = its confidence; the top step's 95 % of the time. */
function traffic(n: number, seed = 7): LabelledRequest[] {
  const rand = seededRandom(seed);
  return Array.from({ length: n }, () => {
    const confidence = rand();
    return confidence >= 0.5
      ? { finalStep: 1, confidence, score: rand() < confidence ? 1 : 0 }
      : { finalStep: 2, confidence: null, score: rand() < 0.95 ? 1 : 0 };
  });
}

describe('calibrate --from-feedback: the fit', () => {
  it('says there is too little data below the minimum, and how much it needs', () => {
    const fit = fitFromFeedback(traffic(12), [0.5, 0], { target: 0.9, confidence: 0.95 });
    assert.equal(fit.promised, false);
    assert.equal(fit.needed, MIN_FEEDBACK_REQUESTS);
    assert.match(fit.problem!, /too little data: 12 labelled requests, need ~30/);
  });

  it('raises a threshold until the bound meets the target, never lowers it', () => {
    const rows = traffic(2000);
    const fit = fitFromFeedback(rows, [0.5, 0], { target: 0.9, confidence: 0.95 });
    assert.equal(fit.promised, true, fit.problem ?? '');
    const t = fit.thresholds[0]!;
    assert.ok(t.fitted > 0.5, `fitted ${t.fitted}`);
    assert.ok(fit.share!.lower >= 0.9);
    // The truth: accepting conf ≥ t gives mean quality (1 + t) / 2 on that band; the fitted policy's
    // true share of the top step (0.95) must meet the target.
    const accepted = 1 - t.fitted;
    const trueShare = (accepted * ((1 + t.fitted) / 2) + (1 - accepted) * 0.95) / 0.95;
    assert.ok(trueShare >= 0.9, `true share ${trueShare}`);
    // Cheap answers that are always good: nothing to raise, and nothing lower can be shown.
    const perfect = rows.map((r) => (r.finalStep === 1 ? { ...r, score: 1 } : r));
    const same = fitFromFeedback(perfect, [0.5, 0], { target: 0.9, confidence: 0.95 });
    assert.equal(same.thresholds[0]!.fitted, 0.5);
    assert.equal(same.promised, true);
  });

  it('with few labels it escalates what it cannot vouch for, and says what keeping the thresholds would need', () => {
    const rows = traffic(40, 3);
    const fit = fitFromFeedback(rows, [0.5, 0], { target: 0.99, confidence: 0.95 });
    // Learn-then-Test from the safe end (everything escalated): only the band of all-good answers is kept.
    assert.equal(fit.promised, true);
    const t = fit.thresholds[0]!.fitted;
    assert.ok(t > 0.5);
    assert.ok(rows.filter((r) => r.finalStep === 1 && r.confidence! >= t).every((r) => r.score === 1));
    assert.ok(fit.current && fit.current.share.lower < 0.99 && fit.current.needed > 40, JSON.stringify(fit.current));
  });

  it('reads the returned answer and its confidence from a trace', () => {
    const attempt = { pool: 'a', deployment: 'd', latency_ms: 1, error: null, cost_usd: 0 };
    const trace = {
      workflow_id: 'w',
      policy: 'p',
      final_step: 2,
      escalations: 1,
      cost_usd: 0,
      attempts: [
        { ...attempt, step: 1, model: 's', confidence: 0.3, accepted: false },
        { ...attempt, step: 2, model: 'l', confidence: null, accepted: true },
      ],
    };
    assert.deepEqual(labelledRow(trace, 1), { finalStep: 2, confidence: null, score: 1 });
    assert.deepEqual(labelledRow({ ...trace, final_step: 1, attempts: [{ ...trace.attempts[0]!, accepted: true }] }, 0), {
      finalStep: 1,
      confidence: 0.3,
      score: 0,
    });
  });
});
