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
import { exitWithUsage, parseCli } from '../common/cli.js';
import { loadPolicyFile, runRoutingBenchmark } from './lib/run.js';
import { costQualitySvg, markdownTable } from './lib/plot.js';
import { runLive } from './lib/live.js';

const USAGE = `usage: npm run bench:routing -- --data <file.jsonl> --policy <policy.yaml> [options]

Replays a split through the cascade with the recorded answers and the real evaluators.
  --split test                 split to replay
  --json                       print one JSON report
  --out-dir <dir>              default bench/results/routing
  --decisions <file.jsonl>     also write every prompt's decision
  --live N                     instead: send N prompts through the real stack and compare with the replay`;

const { values } = parseCli(USAGE, {
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
if (!values.data || !values.policy) exitWithUsage(USAGE, 'bench:routing: --data and --policy are required');
const policy = await loadPolicyFile(values.policy);
if (values.live !== undefined) {
  const n = Number(values.live);
  if (!Number.isInteger(n) || n < 1) exitWithUsage(USAGE, 'bench:routing: --live takes a number of prompts (>= 1)');
  const live = await runLive({ data: values.data, policy, split: values.split, n });
  const { agreement } = live;
  if (values.json) console.log(JSON.stringify({ live: agreement, seconds: live.seconds }));
  else {
    console.log(
      `live: ${agreement.agreeing}/${agreement.compared} prompts decided exactly as the offline replay (${live.seconds.toFixed(1)} s through API → Temporal → pools → farm)`,
    );
    for (const m of agreement.mismatches.slice(0, 20))
      console.log(`  ${m.id} ${m.field}: offline ${JSON.stringify(m.offline)}, live ${JSON.stringify(m.live)}`);
  }
  process.exit(agreement.agreeing === agreement.compared && agreement.missing.length === 0 ? 0 : 1);
}
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
  console.log(
    `wrote ${Object.values(files)
      .map((f) => relative(process.cwd(), f))
      .join(', ')} (${report.seconds.toFixed(1)} s)`,
  );
}
