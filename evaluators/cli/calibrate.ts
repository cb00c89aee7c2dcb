/**
 * npm run calibrate -- --data <file.jsonl> [--split train] (--target 0.99 | --max-cost <usd>) [--out <policy.yaml>]
 *                      [--max-steps 3] [--evaluators answer-model,arithmetic,...] [--no-prerouter] [--ladder m1,m2]
 *                      [--name <prefix>] [--manifest <file>] [--no-replay]
 *
 * Chooses ladder, evaluators, thresholds and pre-router use on one split, writes the policy file, and
 * prints the expected cost and quality on that split (search estimate, then a replay of the written
 * policy through the workflow's runCascade).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { calibrate } from '../calibrate.js';
import { REPO_ROOT } from '../head.js';
import type { EvaluatorSpec } from '../spec.js';
import { loadPolicyFile, runRoutingBenchmark } from '../../bench/lib/run.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    split: { type: 'string', default: 'train' },
    target: { type: 'string' },
    'max-cost': { type: 'string' },
    out: { type: 'string' },
    'max-steps': { type: 'string' },
    evaluators: { type: 'string' },
    'no-prerouter': { type: 'boolean', default: false },
    ladder: { type: 'string' },
    name: { type: 'string' },
    manifest: { type: 'string' },
    'no-replay': { type: 'boolean', default: false },
  },
});
if (!values.data || (values.target === undefined) === (values['max-cost'] === undefined)) {
  console.error(
    'usage: npm run calibrate -- --data <file.jsonl> [--split train] (--target <share, e.g. 0.99> | --max-cost <usd per request>) [--out <policy.yaml>]',
  );
  process.exit(2);
}
const name =
  values.name ??
  values.data
    .split('/')
    .pop()!
    .replace(/\.jsonl$/, '');
const result = await calibrate({
  data: values.data,
  split: values.split,
  target: values.target !== undefined ? Number(values.target) : undefined,
  maxCost: values['max-cost'] !== undefined ? Number(values['max-cost']) : undefined,
  maxSteps: values['max-steps'] ? Number(values['max-steps']) : undefined,
  evaluators: values.evaluators ? (values.evaluators.split(',') as EvaluatorSpec['type'][]) : undefined,
  prerouter: !values['no-prerouter'],
  ladder: values.ladder ? values.ladder.split(',') : undefined,
  manifest: values.manifest,
  name,
});
const out = values.out ?? join(REPO_ROOT, 'evaluators/policies', `${name}.calibrated.yaml`);
await mkdir(dirname(out), { recursive: true });
await writeFile(
  out,
  `# Written by: npm run calibrate -- --data ${relative(REPO_ROOT, values.data)} --split ${values.split} ${values.target !== undefined ? `--target ${values.target}` : `--max-cost ${values['max-cost']}`}\n` +
    YAML.stringify(result.policy),
);
const e = result.expected;
const usd = (v: number) => `$${v.toPrecision(3)}`;
console.log(`calibrate: searched ${result.candidates_evaluated} candidate policies in ${result.seconds.toFixed(1)} s`);
console.log(
  `calibrate: ladder ${result.policy.steps.map((s) => `${s.model} [${s.evaluator.type}${s.evaluator.type === 'none' ? '' : ` >= ${s.threshold}`}]`).join(' -> ')}${result.policy.prerouter ? `, pre-router skip below ${result.policy.prerouter.skip_below}` : ''}`,
);
console.log(
  `calibrate: expected on split "${values.split}" (out-of-fold scores): quality ${e.quality.toFixed(4)} (${(e.quality_share_of_best * 100).toFixed(1)}% of ${result.best_single.model}), cost ${usd(e.cost_per_request)}/request (${(e.cost_share_of_best * 100).toFixed(1)}% of it)${e.feasible ? '' : '  [target NOT met]'}`,
);
if (!values['no-replay']) {
  const { report } = await runRoutingBenchmark({ data: values.data, policy: await loadPolicyFile(out), split: values.split, sweepSize: 0 });
  const s = report.summary;
  console.log(
    `calibrate: replayed through runCascade with the saved models: quality ${s.quality.toFixed(4)} (${(s.quality_share_of_best * 100).toFixed(1)}%), cost ${usd(s.cost_per_request_usd)}/request (${(s.cost_share_of_best * 100).toFixed(1)}%), escalation rate ${s.escalation_rate.toFixed(3)}`,
  );
}
console.log(`calibrate: wrote ${relative(process.cwd(), out)}`);
