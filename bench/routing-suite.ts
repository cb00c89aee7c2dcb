/**
 * npm run bench:routing:suite -- [--data-dir ../shared/data/routellm] [--target 0.98] [--confidence 0.95]
 *
 * For every dataset in a directory: calibrate on `train` once per evaluator (and once with
 * everything allowed), replay each policy on `test` (bench/lib/run.ts), and write one summary
 * table plus each run's report, table and plot under bench/results/routing/. The two-model
 * metrics use the ladder cheapest → best single model, so evaluators compare on the same ladder.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseCli } from '../common/cli.js';
import { datasetFiles } from './lib/datasets.js';
import YAML from 'yaml';
import { loadDataset, loadModelPrices, splitOf } from '../common/dataset.js';
import { predictionInterval } from '../evaluators/calibration/crossfit.js';
import { calibrate, type CalibrateOptions } from '../evaluators/calibrate.js';
import { viewOf } from '../evaluators/dataset-adapter.js';
import { REPO_ROOT } from '../evaluators/head.js';
import { costQualitySvg, markdownTable } from './lib/plot.js';
import { loadPolicyFile, runRoutingBenchmark, type RoutingReport } from './lib/run.js';

const USAGE = `usage: npm run bench:routing:suite [-- --data-dir ../shared/data/routellm] [--target 0.95] [--out-dir bench/results/routing] [--only <dataset>]

Calibrates on train once per evaluator for every dataset, replays each policy on test, writes a summary.`;

const { values } = parseCli(USAGE, {
  options: {
    'data-dir': { type: 'string', default: resolve(REPO_ROOT, '../shared/data/routellm') },
    target: { type: 'string', default: '0.98' },
    confidence: { type: 'string', default: '0.95' },
    'out-dir': { type: 'string', default: join(REPO_ROOT, 'bench/results/routing') },
    only: { type: 'string' },
  },
});
const outDir = values['out-dir'];
await mkdir(join(outDir, 'policies'), { recursive: true });
const modes: { mode: string; opts: Partial<CalibrateOptions>; twoModel: boolean }[] = [
  { mode: 'calibrated (all evaluators)', opts: {}, twoModel: false },
  { mode: 'answer-model', opts: { evaluators: ['answer-model'], prerouter: false }, twoModel: true },
  { mode: 'arithmetic', opts: { evaluators: ['arithmetic'], prerouter: false }, twoModel: true },
  { mode: 'validators', opts: { evaluators: ['validators'], prerouter: false }, twoModel: true },
  { mode: 'pre-router only (prompt)', opts: { evaluators: ['none'] }, twoModel: true },
];
const lines = [
  `Calibrated on \`train\`, reported on \`test\` (target quality ${values.target} × best single model, confidence ${values.confidence}). Two-model rows use the ladder cheapest → best model. Promised: the one-sided bound of the quality share cross-fitted on train [its prediction interval for a test split of this size] (docs/evaluators.md#calibration).`,
  '',
  '| dataset | evaluator | promised share (interval) | test quality (share of best) | cost share of best | APGR | CPT(50%) | CPT(80%) | step-1 AUROC | cost saving at 95% of best | false-accept rate |',
  '|---|---|---|---|---|---|---|---|---|---|---|',
];
for (const { data, name } of datasetFiles(values['data-dir'], values.only)) {
  const all = await loadDataset(data);
  const train = all.filter((r) => splitOf(r) === 'train');
  const testPrompts = all.filter((r) => splitOf(r) === 'test').length;
  const view = viewOf(train, await loadModelPrices(data));
  const pair = [view.models[0]!.name, view.best.name];
  for (const m of modes) {
    let report: RoutingReport;
    let promised: string;
    try {
      const result = await calibrate({
        data,
        split: 'train',
        target: Number(values.target),
        confidence: Number(values.confidence),
        name,
        log: () => {},
        ...m.opts,
        ...(m.twoModel ? { ladder: pair } : {}),
      });
      const ps = result.promise.share;
      const pi = predictionInterval(ps, testPrompts, Number(values.confidence));
      promised = `${result.promise.promised ? '≥ ' : 'not promised: '}${ps.lower.toFixed(3)} [${pi[0].toFixed(3)}–${pi[1].toFixed(3)}]`;
      const slug = m.mode.split(' ')[0]!.replace(/[^a-z-]/g, '');
      const policyFile = join(outDir, 'policies', `${name}-${slug}.yaml`);
      await writeFile(policyFile, YAML.stringify({ ...result.policy, name: `${name}-${slug}` }));
      ({ report } = await runRoutingBenchmark({ data, policy: await loadPolicyFile(policyFile), split: 'test' }));
      const stem = join(outDir, `${name}-${slug}`);
      await writeFile(`${stem}.json`, JSON.stringify(report, null, 1) + '\n');
      await writeFile(`${stem}.md`, markdownTable(report) + `\n![cost-quality](${name}-${slug}.svg)\n`);
      await writeFile(`${stem}.svg`, costQualitySvg(report));
    } catch (err) {
      lines.push(`| ${name} | ${m.mode} | n/a: ${(err as Error).message.slice(0, 80)} | | | | | | | | |`);
      continue;
    }
    const s = report.summary;
    const f3 = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(3));
    const a = report.step_auroc[0];
    lines.push(
      `| ${name} | ${m.mode} | ${promised} | ${f3(s.quality)} (${f3(s.quality_share_of_best)}) | ${f3(s.cost_share_of_best)} | ${f3(report.two_model?.apgr)} | ${f3(report.two_model?.cpt50)} | ${f3(report.two_model?.cpt80)} | ${f3(a?.auroc)} | ${report.cost_at_95 ? `${report.cost_at_95.saving.toFixed(2)}×` : 'not reached'} | ${f3(s.false_accept_rate)} |`,
    );
    console.log(lines[lines.length - 1]);
  }
}
await writeFile(join(outDir, 'SUMMARY.md'), lines.join('\n') + '\n');
console.log(`wrote ${join(outDir, 'SUMMARY.md')}`);
