import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aiq, apgr, auroc, costAtQuality, cpt } from '../../bench/lib/metrics.js';

describe('routing metrics', () => {
  it('AUROC: perfect, inverted, ties, one class', () => {
    assert.equal(auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]), 1);
    assert.equal(auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]), 0);
    assert.equal(auroc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]), 0.5);
    assert.equal(auroc([0.1, 0.2], [1, 1]), null);
  });

  it('APGR: random mixing is 0.5, a perfect router reaches near 1', () => {
    const random = Array.from({ length: 11 }, (_, i) => ({ threshold: i, strong_share: i / 10, quality: 0.6 + (0.2 * i) / 10, cost: i }));
    assert.ok(Math.abs(apgr(random, 0.6, 0.8) - 0.5) < 1e-9);
    // Weak is right 60% of the time; a perfect router recovers the whole gap after 40% strong calls.
    const perfect = Array.from({ length: 11 }, (_, i) => ({ threshold: i, strong_share: i / 10, quality: Math.min(0.8, 0.6 + (0.2 * i) / 4), cost: i }));
    assert.ok(apgr(perfect, 0.6, 0.8) > 0.79);
    assert.ok(Math.abs(cpt(random, 0.6, 0.8, 0.5) - 0.5) < 1e-9 * 1e3);
    assert.ok(Math.abs(cpt(perfect, 0.6, 0.8, 0.5) - 0.2) < 1e-9);
  });

  it('AIQ: area under the non-decreasing convex hull over the cost range', () => {
    assert.ok(
      Math.abs(
        aiq([
          { cost: 0, quality: 0.5 },
          { cost: 1, quality: 1 },
        ]) - 0.75,
      ) < 1e-12,
    );
    // A dominated point below the hull changes nothing; one above raises it.
    assert.ok(
      Math.abs(
        aiq([
          { cost: 0, quality: 0.5 },
          { cost: 0.5, quality: 0.6 },
          { cost: 1, quality: 1 },
        ]) - 0.75,
      ) < 1e-12,
    );
    assert.ok(
      aiq([
        { cost: 0, quality: 0.5 },
        { cost: 0.5, quality: 0.95 },
        { cost: 1, quality: 1 },
      ]) > 0.849,
    );
  });

  it('cost at a quality target interpolates along the sweep', () => {
    const sweep = [
      { cost: 0, quality: 0.5 },
      { cost: 10, quality: 1 },
    ];
    assert.equal(costAtQuality(sweep, 0.75), 5);
    assert.equal(costAtQuality(sweep, 1.1), null);
  });
});
