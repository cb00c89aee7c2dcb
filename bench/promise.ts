/**
 * npm run bench:promise -- [--data-dir ../shared/data/routellm] [--targets 0.98,0.95] [--confidence 0.95] [--swap] [--only gsm8k] [--folds 5]
 *
 * Calibration's promise against what happens: per dataset and target, calibrate on one split (heads
 * from `npm run train` on that split), replay the written policy through runCascade on the other
 * split, and print the promised bound, the prediction interval for a split of that size, the
 * realised share of the best model, whether it is ≥ target − 0.5 pt and inside the interval, and the
 * cost. Default: calibrate on train (the committed heads), realise on test. `--swap` reverses the
 * roles (heads trained on test into a temporary folder first): the leave-one-split-out check.
 * Writes bench/results/routing/PROMISE.md (or PROMISE-swap.md).
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import YAML from 'yaml';
import { parseCli } from '../common/cli.js';
import { datasetFiles } from './lib/datasets.js';
import { loadDataset, splitOf } from '../common/dataset.js';
import { calibrate } from '../evaluators/calibrate.js';
import { predictionInterval } from '../evaluators/calibration/crossfit.js';
import { REPO_ROOT } from '../evaluators/head.js';
import { train } from '../evaluators/train/train.js';
import { loadPolicyFile, runRoutingBenchmark } from './lib/run.js';

const USAGE =
  'usage: npm run bench:promise -- [--data-dir ../shared/data/routellm] [--targets 0.98,0.95] [--confidence 0.95] [--swap] [--only <name>] [--folds 5]';
const { values } = parseCli(USAGE, {
  options: {
    'data-dir': { type: 'string', default: resolve(REPO_ROOT, '../shared/data/routellm') },
    targets: { type: 'string', default: '0.98,0.95' },
    confidence: { type: 'string', default: '0.95' },
    swap: { type: 'boolean', default: false },
    only: { type: 'string' },
    folds: { type: 'string', default: '5' },
  },
});
const confidence = Number(values.confidence);
const targets = values.targets.split(',').map(Number);
const [calSplit, realSplit] = values.swap ? ['test', 'train'] : ['train', 'test'];
const tmp = await mkdtemp(join(tmpdir(), 'cascade-promise-'));
const started = Date.now();
const f3 = (v: number) => v.toFixed(3);
const lines = [
  `Calibrated on \`${calSplit}\`${values.swap ? ' (heads trained on it first)' : ''}, realised on \`${realSplit}\`, confidence ${confidence}, ${values.folds} folds (\`npm run bench:promise${values.swap ? ' -- --swap' : ''}\`).`,
  '',
  `| dataset | target | ${calSplit} prompts | expected share (cross-fitted) | promised bound [prediction interval for ${realSplit}] | realised on ${realSplit} (prompts) | ≥ target − 0.5 pt | inside | cost share of best | chosen |`,
  '|---|--:|--:|--:|--:|--:|:-:|:-:|--:|---|',
];
for (const { data, name } of datasetFiles(values['data-dir'], values.only)) {
  const rows = await loadDataset(data);
  const realised = rows.filter((r) => splitOf(r) === realSplit).length;
  let manifest: string | undefined;
  if (values.swap) {
    console.log(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${name}: training heads on ${calSplit}`);
    await train({ data, name: `${name}-swap`, split: calSplit, outDir: tmp, useEncoder: true, log: () => {} });
    manifest = join(tmp, `${name}-swap.manifest.json`);
  }
  for (const target of targets) {
    const result = await calibrate({ data, split: calSplit, target, confidence, manifest, name, folds: Number(values.folds), log: () => {} });
    const file = join(tmp, `${name}-${target}.yaml`);
    await writeFile(file, YAML.stringify(result.policy));
    const { report } = await runRoutingBenchmark({ data, policy: await loadPolicyFile(file), split: realSplit, sweepSize: 0 });
    const s = report.summary;
    const ps = result.promise.share;
    const pi = predictionInterval(ps, realised, confidence);
    const share = s.quality_share_of_best;
    const chosen = result.policy.steps
      .map((st) => `${st.model.split('/').pop()}${st.evaluator.type === 'none' ? '' : ` [${st.evaluator.type} ≥ ${st.threshold}]`}`)
      .join(' → ');
    const pre = result.policy.prerouter ? `, pre-router skip < ${result.policy.prerouter.skip_below}` : '';
    const line = `| ${name} | ${target} | ${result.promise.prompts} | ${f3(ps.estimate)} | ${result.promise.promised ? '' : 'not promised: '}${f3(ps.lower)} [${f3(pi[0])}–${f3(pi[1])}] | ${f3(share)} (${realised}) | ${share >= target - 0.005 ? 'yes' : '**no**'} | ${share >= pi[0] - 1e-9 && share <= pi[1] + 1e-9 ? 'yes' : '**no**'} | ${f3(s.cost_share_of_best)} | ${chosen}${pre}${result.promise.search_target && result.promise.search_target > target + 1e-9 ? ` (searched at ${f3(result.promise.search_target)})` : ''} |`;
    lines.push(line);
    console.log(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${line}`);
  }
}
const out = join(REPO_ROOT, 'bench/results/routing', values.swap ? 'PROMISE-swap.md' : 'PROMISE.md');
await writeFile(out, lines.join('\n') + '\n');
console.log(`wrote ${out} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
