/**
 * npm run bench:promise:synthetic -- [--models 3] [--prompts 100] [--test 200] [--sets 60] [--target 0.98] [--folds 5] [--graded]
 *
 * Does calibration's promise hold where the truth is known? Calibrates on `sets` independent
 * synthetic samples of `prompts` prompts (bench/lib/correlated-steps.ts), and scores each chosen
 * policy on 20,000 fresh prompts (its true share of the reference model) and on a test set of
 * `test` prompts (what a user would measure). Prints how often the true share was at or above the
 * promised bound, above the target, inside the interval, and the realised share inside the
 * prediction interval; mean cost share; how often a policy cheaper than the reference was written.
 * `--folds 0` is the search's in-sample bootstrap alone, for comparison.
 */
import { parseCli } from '../common/cli.js';
import { predictionInterval, promiseSearch } from '../evaluators/calibration/crossfit.js';
import { simulate, type StepData } from '../evaluators/calibration/search.js';
import { correlatedSteps } from './lib/correlated-steps.js';

const USAGE =
  'usage: npm run bench:promise:synthetic -- [--models 3] [--prompts 100] [--test 200] [--sets 60] [--target 0.98] [--confidence 0.95] [--folds 5] [--graded]';
const { values } = parseCli(USAGE, {
  options: {
    models: { type: 'string', default: '3' },
    prompts: { type: 'string', default: '100' },
    test: { type: 'string', default: '200' },
    sets: { type: 'string', default: '60' },
    target: { type: 'string', default: '0.98' },
    confidence: { type: 'string', default: '0.95' },
    folds: { type: 'string', default: '5' },
    graded: { type: 'boolean', default: false },
  },
});
const [M, n, m, sets, target, confidence, folds] = [
  values.models,
  values.prompts,
  values.test,
  values.sets,
  values.target,
  values.confidence,
  values.folds,
].map(Number) as [number, number, number, number, number, number, number];
const population = correlatedSteps(M, 20000, 424242, values.graded);
const tally = { bound: 0, target: 0, interval: 0, prediction: 0, cheaper: 0, cost: 0, truth: 0 };
const started = Date.now();
for (let set = 1; set <= sets; set++) {
  const cal = correlatedSteps(M, n, set * 7 + 1, values.graded);
  const test = correlatedSteps(M, m, set * 7 + 3, values.graded);
  const reference = cal.reduce((b, s, i) => (s.meanQuality > cal[b]!.meanQuality ? i : b), 0);
  const res = promiseSearch(cal, { target, confidence, maxSteps: 3, reference, tieTolerance: 0.01 * cal[reference]!.meanCost, folds });
  const share = (steps: StepData[]) => {
    const p = new Float64Array(steps[0]!.cost.length);
    const cost = simulate(steps, res.chosen, p);
    return { share: p.reduce((a, b) => a + b, 0) / steps[reference]!.quality.reduce((a, b) => a + b, 0), cost: cost / steps[reference]!.meanCost };
  };
  const truth = share(population);
  const measured = share(test).share;
  const pi = predictionInterval(res.share, m, confidence);
  tally.truth += truth.share;
  tally.cost += truth.cost;
  if (res.chosen.ladder.length > 1 || res.chosen.ladder[0] !== reference) tally.cheaper++;
  if (truth.share >= res.share.lower - 1e-9) tally.bound++;
  if (truth.share >= target) tally.target++;
  if (truth.share >= res.share.interval[0] - 1e-9 && truth.share <= res.share.interval[1] + 1e-9) tally.interval++;
  if (measured >= pi[0] - 1e-9 && measured <= pi[1] + 1e-9) tally.prediction++;
}
console.log(
  `${M} models, ${n} calibration prompts, ${sets} sets, target ${target}, ${folds >= 2 ? `cross-fitted over ${folds} folds` : 'in-sample bootstrap'}${values.graded ? ', graded' : ''}: ` +
    `true share >= promised bound in ${tally.bound}/${sets}, >= target in ${tally.target}/${sets}, inside the interval in ${tally.interval}/${sets}; ` +
    `share on ${m} test prompts inside the prediction interval in ${tally.prediction}/${sets}; mean true share ${(tally.truth / sets).toFixed(3)}, ` +
    `mean cost share ${(tally.cost / sets).toFixed(3)}, cheaper than the reference in ${tally.cheaper}/${sets} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
);
