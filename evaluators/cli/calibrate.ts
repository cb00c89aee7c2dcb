/**
 * npm run calibrate -- --data <file.jsonl> [--split train] (--target 0.99 [--confidence 0.95] | --max-cost <usd>) [--out <policy.yaml>]
 *                      [--train] [--max-steps 3] [--folds 5] [--evaluators answer-model,arithmetic,...] [--no-prerouter] [--ladder m1,m2]
 *                      [--name <prefix>] [--manifest <file>] [--no-replay]
 *
 * Chooses ladder, evaluators, thresholds and pre-router use on one split, writes the policy file, and
 * prints the promise (quality share's lower bound at the confidence level, with its interval), the
 * expected cost, and a replay of the written policy through the workflow's runCascade. With
 * --train, first trains the answer heads and the pre-router on the same split (npm run train).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import YAML from 'yaml';
import { calibrate, type CalibrationResult } from '../calibrate.js';
import { predictionInterval } from '../calibration/crossfit.js';
import { REPO_ROOT } from '../head.js';
import type { EvaluatorSpec } from '../spec.js';
import { train } from '../train/train.js';
import { exitWithUsage, parseCli } from '../../common/cli.js';
import { loadPolicyFile, runRoutingBenchmark } from '../../bench/lib/run.js';

const USAGE = `usage: npm run calibrate -- --data <file.jsonl> (--target <share> | --max-cost <usd>) [options]
       npm run calibrate -- --from-feedback --target <share> [--policy <name>] [--confidence 0.95] [--out <policy.yaml>]

Chooses ladder, evaluators, thresholds and pre-router use on one split and writes the policy file.
  --data <file.jsonl>        RouteLLM-style dataset
  --target <share>           quality to reach, as a share of the best single model (e.g. 0.95)
  --confidence 0.95          with --target: confidence of the promised lower bound
  --max-cost <usd>           or: the best quality within this cost per request
  --train                    train the heads on the split first (npm run train)
  --split train              split to calibrate on
  --out <policy.yaml>        default evaluators/policies/<name>.calibrated.yaml
  --max-steps 3              longest ladder to consider
  --folds 5                  cross-fit the promise over this many folds (0: in-sample bootstrap only, optimistic)
  --evaluators a,b,...       evaluator types allowed (answer-model, arithmetic, validators, ...)
  --no-prerouter             no pre-router skip
  --ladder m1,m2             fixed ladder of models
  --name <prefix>            name of the policy (default: the dataset's)
  --manifest <file>          heads manifest to use
  --no-replay                skip the replay of the written policy
  --from-feedback            re-fit the thresholds of the configured policies (CASCADE_CONFIG) from the
                             labels sent to POST /v1/cascade/{id}/feedback and the requests' traces
  --policy <name>            with --from-feedback: only this policy`;

const { values } = parseCli(USAGE, {
  options: {
    data: { type: 'string' },
    split: { type: 'string', default: 'train' },
    target: { type: 'string' },
    confidence: { type: 'string', default: '0.95' },
    'max-cost': { type: 'string' },
    out: { type: 'string' },
    train: { type: 'boolean', default: false },
    'max-steps': { type: 'string' },
    evaluators: { type: 'string' },
    'no-prerouter': { type: 'boolean', default: false },
    ladder: { type: 'string' },
    name: { type: 'string' },
    manifest: { type: 'string' },
    'no-replay': { type: 'boolean', default: false },
    folds: { type: 'string', default: '5' },
    'from-feedback': { type: 'boolean', default: false },
    policy: { type: 'string' },
  },
});
if (values['from-feedback']) {
  if (values.target === undefined) exitWithUsage(USAGE, 'calibrate: --from-feedback needs --target');
  const { calibrateFromFeedback } = await import('./calibrate-feedback.js');
  await calibrateFromFeedback({ target: Number(values.target), confidence: Number(values.confidence), policy: values.policy, out: values.out });
  process.exit(0);
}
if (!values.data) exitWithUsage(USAGE, 'calibrate: --data is required');
if ((values.target === undefined) === (values['max-cost'] === undefined)) exitWithUsage(USAGE, 'calibrate: give one of --target and --max-cost');
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const name =
  values.name ??
  values.data
    .split('/')
    .pop()!
    .replace(/\.jsonl$/, '');
let manifest = values.manifest;
if (values.train) {
  console.log(`calibrate: training heads on split "${values.split}" first (npm run train)`);
  await train({ data: values.data, name, split: values.split, useEncoder: true, log: (m) => console.log(`[${elapsed()}] ${m}`) });
  manifest ??= join(REPO_ROOT, 'evaluators/models', `${name}.manifest.json`);
  console.log(`[${elapsed()}] calibrate: searching policies`);
}
const target = values.target !== undefined ? Number(values.target) : undefined;
const result = await calibrate({
  data: values.data,
  split: values.split,
  target,
  confidence: Number(values.confidence),
  maxCost: values['max-cost'] !== undefined ? Number(values['max-cost']) : undefined,
  maxSteps: values['max-steps'] ? Number(values['max-steps']) : undefined,
  folds: Number(values.folds),
  evaluators: values.evaluators ? (values.evaluators.split(',') as EvaluatorSpec['type'][]) : undefined,
  prerouter: !values['no-prerouter'],
  ladder: values.ladder ? values.ladder.split(',') : undefined,
  manifest,
  name,
});
const out = values.out ?? join(REPO_ROOT, 'evaluators/policies', `${name}.calibrated.yaml`);
await mkdir(dirname(out), { recursive: true });
const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
const p = result.promise;
// Where a user will measure the policy: the file's other split(s) when it has them, else as many prompts again.
const measuredOn = p.held_out > 0 ? p.held_out : p.prompts;
const pi = predictionInterval(p.share, measuredOn, p.confidence);
const where = p.held_out > 0 ? `the ${p.held_out} prompts outside split "${values.split}"` : `${measuredOn} fresh prompts of your own`;
await writeFile(
  out,
  `# Written by: npm run calibrate -- --data ${relative(REPO_ROOT, values.data)} --split ${values.split} ${target !== undefined ? `--target ${values.target} --confidence ${values.confidence}` : `--max-cost ${values['max-cost']}`}\n` +
    `# Quality share of ${result.best_single.model} on unseen prompts like "${values.split}" (${p.prompts} prompts, ${p.folds >= 2 ? `cross-fitted over ${p.folds} folds` : 'in-sample'}): ${pct(p.share.estimate)}, ` +
    `${pct(p.confidence)} interval ${pct(p.share.interval[0])}–${pct(p.share.interval[1])}, one-sided bound ${pct(p.share.lower)}\n` +
    `# Measured on ${where}: expect ${pct(Math.max(0, pi[0]))}–${pct(pi[1])} (${pct(p.confidence)} prediction interval)\n` +
    YAML.stringify(result.policy),
);
printReport(result);
if (!values['no-replay']) {
  const { report } = await runRoutingBenchmark({ data: values.data, policy: await loadPolicyFile(out), split: values.split, sweepSize: 0 });
  const s = report.summary;
  console.log(
    `calibrate: replayed through runCascade with the saved models: quality ${s.quality.toFixed(4)} (${pct(s.quality_share_of_best)}), cost ${usd(s.cost_per_request_usd)}/request (${pct(s.cost_share_of_best)}), escalation rate ${s.escalation_rate.toFixed(3)}`,
  );
}
console.log(`calibrate: wrote ${relative(process.cwd(), out)} (total run time ${elapsed()})`);

function usd(v: number): string {
  return `$${v.toPrecision(3)}`;
}

function printReport(r: CalibrationResult): void {
  const e = r.expected;
  const p = r.promise;
  console.log(
    `calibrate: searched ${r.candidates_evaluated} candidate policies in ${r.seconds.toFixed(1)} s${r.pruned.length ? ` (dominated, left out: ${r.pruned.join(', ')})` : ''}`,
  );
  for (const s of r.signals)
    console.log(
      `calibrate: ${s.model}: evaluator ${s.chosen ?? 'none applies'}${
        Object.keys(s.auroc).length
          ? ` (AUROC ${Object.entries(s.auroc)
              .map(([k, v]) => `${k} ${v.toFixed(3)}`)
              .join(', ')})`
          : ''
      }`,
    );
  console.log(
    `calibrate: ladder ${r.policy.steps.map((s) => `${s.model} [${s.evaluator.type}${s.evaluator.type === 'none' ? '' : ` >= ${s.threshold}`}]`).join(' -> ')}${r.policy.prerouter ? `, pre-router skip below ${r.policy.prerouter.skip_below}` : ''}`,
  );
  console.log(
    `calibrate: expected quality share ${pct(p.share.estimate)} of ${r.best_single.model} on unseen prompts (${p.folds >= 2 ? `cross-fitted over ${p.folds} folds` : 'in-sample, optimistic'}; ${pct(p.confidence)} interval ${pct(p.share.interval[0])}–${pct(p.share.interval[1])}), cost ${usd(e.cost_per_request)}/request (${pct(e.cost_share_of_best)} of it), from ${p.prompts} prompts`,
  );
  if (p.share.se > 0)
    console.log(`calibrate: measured on ${where}, expect a share in ${pct(Math.max(0, pi[0]))}–${pct(pi[1])} (${pct(p.confidence)} prediction interval)`);
  if (p.target === null) return;
  if (p.search_target !== null && p.search_target > p.target + 1e-9)
    console.log(
      `calibrate: the search ran at target ${pct(p.search_target)}: at ${pct(p.target)} its pick is optimistic on this data (selection among many candidates), and the promise is about what you will see`,
    );
  if (p.promised)
    console.log(
      `calibrate: PROMISE: quality share >= ${pct(p.target)} on unseen prompts like these, with confidence ${pct(p.confidence)} (one-sided bound ${pct(p.share.lower)})`,
    );
  else console.log(`calibrate: NO PROMISE possible: ${pct(p.target)} exceeds what this ladder can be shown to reach on this data`);
  const sf = p.shortfall;
  if (sf)
    console.log(
      `calibrate: the data is too small for a cheaper policy: the search's pick at ${pct(p.target)} (${sf.steps} steps, ${pct(sf.cost_share_of_best)} of the cost) delivers ${pct(sf.share.estimate)} cross-fitted, bound ${pct(sf.share.lower)}; ` +
        (Number.isFinite(sf.prompts_needed)
          ? `about ${sf.prompts_needed} labelled prompts (now ${p.prompts}) would be needed to promise it`
          : 'its estimate is below the target already, so labelling more prompts would mostly shrink the selection optimism, not prove this policy'),
    );
}
