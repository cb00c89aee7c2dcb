/**
 * npm run bench:routing -- --data <file.jsonl> --policy <policy.yaml> [--split test] [--json] [--out-dir bench/results/routing]
 *                          [--decisions <file.jsonl>] [--live N]
 *
 * Offline: replays every prompt of the split through the workflow's runCascade with the recorded
 * answers and the real evaluators; prints the report (or one JSON object with --json) and writes
 * <out-dir>/<dataset>-<policy>.{json,md,svg}.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { loadPolicyFile, runRoutingBenchmark } from './lib/run.js';
import { costQualitySvg, markdownTable } from './lib/plot.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    policy: { type: 'string' },
    split: { type: 'string', default: 'test' },
    json: { type: 'boolean', default: false },
    'out-dir': { type: 'string', default: 'bench/results/routing' },
    decisions: { type: 'string' },
    live: { type: 'string' },
  },
});
if (!values.data || !values.policy) {
  console.error('usage: npm run bench:routing -- --data <file.jsonl> --policy <policy.yaml> [--split test] [--json] [--live N]');
  process.exit(2);
}
if (values.live !== undefined) {
  console.error('bench:routing: --live is not implemented yet (the offline decision records it will compare with are written by --decisions <file>)');
  process.exit(2);
}
const policy = await loadPolicyFile(values.policy);
const { report, decisions } = await runRoutingBenchmark({ data: values.data, policy, split: values.split });
const stem = `${basename(values.data).replace(/\.jsonl$/, '')}-${basename(values.policy).replace(/\.ya?ml$/, '')}-${values.split}`;
await mkdir(values['out-dir'], { recursive: true });
const files = { json: join(values['out-dir'], `${stem}.json`), md: join(values['out-dir'], `${stem}.md`), svg: join(values['out-dir'], `${stem}.svg`) };
await writeFile(files.json, JSON.stringify(report, null, 1) + '\n');
await writeFile(files.md, markdownTable(report) + `\n![cost-quality](${basename(files.svg)})\n`);
await writeFile(files.svg, costQualitySvg(report));
if (values.decisions) await writeFile(values.decisions, decisions.map((d) => JSON.stringify(d)).join('\n') + '\n');
if (values.json) console.log(JSON.stringify(report));
else {
  console.log(markdownTable(report));
  console.log(`wrote ${Object.values(files).map((f) => relative(process.cwd(), f)).join(', ')} (${report.seconds.toFixed(1)} s)`);
}
