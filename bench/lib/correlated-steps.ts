/**
 * Synthetic calibration data where the truth is known: `models` models (0 = cheapest, price ×√10
 * per model) whose errors are correlated through a per-prompt difficulty (hard prompts are hard for
 * every model, as in real data), each with a noisy confidence in its own answer. Quality is right/
 * wrong, or with `graded` a score in (0, 1). Used by bench/promise-synthetic.ts and the unit tests
 * of calibration/crossfit.ts.
 */
import { seededRandom } from '../../common/random.js';
import type { StepData } from '../../evaluators/calibration/search.js';

export function correlatedSteps(models: number, rows: number, seed: number, graded = false): StepData[] {
  const rand = seededRandom(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const q = Array.from({ length: models }, () => new Float64Array(rows));
  const cost = q.map(() => new Float64Array(rows));
  const conf = q.map(() => new Float64Array(rows));
  for (let i = 0; i < rows; i++) {
    const difficulty = normal();
    for (let k = 0; k < models; k++) {
      const skill = -0.2 + (1.6 * k) / Math.max(1, models - 1) + (k === models - 1 ? 0 : 0.1 * Math.sin(k));
      const margin = skill - 0.8 * difficulty + 0.6 * normal();
      q[k]![i] = graded ? 1 / (1 + Math.exp(-2 * margin)) : margin > 0 ? 1 : 0;
      cost[k]![i] = (1 + rand() * 0.5) * 10 ** (k / 2) * 1e-5;
      conf[k]![i] = 1 / (1 + Math.exp(-(1.2 * margin + 0.8 * normal())));
    }
  }
  const mean = (a: Float64Array) => a.reduce((x, y) => x + y, 0) / rows;
  return q.map((quality, k) => ({
    name: `m${k}`,
    cost: cost[k]!,
    quality,
    has: new Uint8Array(rows).fill(1),
    conf: conf[k]!,
    prerouter: null,
    meanCost: mean(cost[k]!),
    meanQuality: mean(quality),
  }));
}
