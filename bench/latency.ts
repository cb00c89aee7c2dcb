/**
 * `npm run bench:latency`: live latency of every way to ask Cascade, on the farm's realistic
 * timings. Starts the production process layout with the real config/cascade.yaml and the farm of
 * config/farm.yaml (Mixtral slow on `cpu`, fast on `gpu-a`, GPT-4 on `api` in between, with
 * jitter), every delay scaled by --time-scale, then sends the same seeded mix of recorded GSM8K and
 * MT-Bench prompts with `stream: true` through each policy at each concurrency and measures at the
 * client: time to the first answer text (drafts do not count), total time, cost (final chunk's
 * trace), quality (the recorded label of the model whose answer came back), escalations, early
 * stops and hedges (the farm's attempt log). Prints a table and the issue's targets (#10) as
 * PASS/MISS, writes bench/results/latency.json and docs/images/latency.svg.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseCli } from '../common/cli.js';
import { REPO_ROOT } from '../config/load.js';
import type { Attempt } from '../farm/index.js';
import { runLoad } from './lib/overhead-load.js';
import { streamChat } from './lib/latency-client.js';
import { latencySvg } from './lib/latency-plot.js';
import { loadPrompts } from './lib/latency-prompts.js';
import {
  checkTargets,
  markdownTable,
  recordOf,
  relateToStrong,
  scaleWarning,
  summarisePhase,
  targetLines,
  type Phase,
  type RequestRecord,
} from './lib/latency-report.js';
import { startLatencyStack, type LatencyStack } from './lib/latency-stack.js';

const STRONG = 'gpt-4';
const CHEAP = 'mixtral';
const SPEED = 'cascade:speed';
const PRESETS = [SPEED, 'cascade:quality', 'cascade:cost'];
/** Used when the config has no presets yet: the calibrated GSM8K policy stands in. */
const STAND_IN = 'cascade:gsm8k-calibrated';

const USAGE = `usage: npm run bench:latency -- [options]

  --n N                 prompts per policy and concurrency (default 200; a fifth MT-Bench, the rest GSM8K, test split)
  --concurrency 1,8     concurrencies to run (default 1,8)
  --policies a,b        models to ask (default: the presets ${PRESETS.join(', ')} that the config has,
                        else ${STAND_IN}; then cascade, ${STRONG} (always-strong), ${CHEAP} (always-cheap))
  --time-scale F        multiply every farm first-token time by F and divide its tokens/s by F
                        (default 0.25: the farm is 4x faster; absolute times are scaled, ratios are what count)
  --seed S              prompt sample and order (default 1)
  --max-minutes M       no request starts after M minutes; each phase gets an even share of what is
                        left, so a phase that cannot send all its prompts in time reports fewer (default 12)
  --request-timeout-s T one request's limit (default 120)
  --data-dir DIR        RouteLLM data (default ../shared/data/routellm)
  --out FILE            JSON results (default bench/results/latency.json)
  --plot FILE           SVG plot (default docs/images/latency.svg)
  --records FILE        also write every request (timings, model, trace) as JSON lines
  --verbose             the stack's own log lines`;

const { values: args } = parseCli(USAGE, {
  options: {
    n: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '1,8' },
    policies: { type: 'string' },
    'time-scale': { type: 'string', default: '0.25' },
    seed: { type: 'string', default: '1' },
    'max-minutes': { type: 'string', default: '12' },
    'request-timeout-s': { type: 'string', default: '120' },
    'data-dir': { type: 'string', default: join(REPO_ROOT, '..', 'shared', 'data', 'routellm') },
    out: { type: 'string', default: join(REPO_ROOT, 'bench', 'results', 'latency.json') },
    plot: { type: 'string', default: join(REPO_ROOT, 'docs', 'images', 'latency.svg') },
    records: { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
});

const log = (text: string) => process.stderr.write(`[bench] ${text}\n`);

function positive(name: string, value: string, integer = false): number {
  const v = Number(value);
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v)))
    throw new Error(`--${name}: "${value}" is not a positive ${integer ? 'integer' : 'number'}`);
  return v;
}

async function main(): Promise<void> {
  const n = positive('n', args.n, true);
  const scale = positive('time-scale', args['time-scale']);
  const seed = positive('seed', args.seed, true);
  const concurrencies = args.concurrency.split(',').map((c) => positive('concurrency', c.trim(), true));
  const budgetMs = positive('max-minutes', args['max-minutes']) * 60_000;
  const requestTimeoutMs = positive('request-timeout-s', args['request-timeout-s']) * 1000;
  const prompts = await loadPrompts(resolve(args['data-dir']), n, seed);
  const started = Date.now();
  const loadStart = loadavg();
  log(
    `${prompts.length} prompts (${prompts.filter((p) => p.row.dataset === 'mt_bench').length} MT-Bench), time scale ${scale}, load average ${loadStart.map((l) => l.toFixed(2)).join(' ')}`,
  );

  const stack = await startLatencyStack({ timeScale: scale, verbose: args.verbose, log });
  process.once('SIGINT', () => void stack.stop().then(() => process.exit(130)));
  const records = args.records ? resolve(args.records) : null;
  if (records) writeFileSync(records, '');
  const dump = records ? (line: object) => appendFileSync(records, JSON.stringify(line) + '\n') : null;
  const run: Phase[] = [];
  let policies: string[] = [];
  try {
    policies = args.policies ? args.policies.split(',').map((p) => p.trim()) : await defaultPolicies(stack.apiUrl);
    log(`policies: ${policies.join(', ')}; concurrency ${concurrencies.join(', ')}`);
    const plan = concurrencies.flatMap((c) => policies.map((policy) => ({ policy, c })));
    for (const [i, { policy, c }] of plan.entries()) {
      // An even share of what is left, so a run that cannot finish still measures every phase (on fewer prompts).
      const sliceMs = (started + budgetMs - Date.now()) / (plan.length - i);
      run.push(await runPhase(stack, policy, c, prompts, Math.max(sliceMs, 1), requestTimeoutMs, dump));
    }
  } finally {
    await stack.stop();
  }

  relateToStrong(run, STRONG);
  const phases = run.map((p) => p.summary);
  const targets = checkTargets(phases, STRONG, SPEED);
  const loadEnd = loadavg();
  const minutes = (Date.now() - started) / 60_000;
  const scaleNote = `time scale ${scale}: every farm first-token time ×${scale}, tokens/s ÷${scale}; absolute times are scaled, the ratios against always-strong (${STRONG}) measured in the same run are what matter`;
  process.stdout.write(
    `\nLive latency, stream: true, ${prompts.length} prompts (GSM8K + MT-Bench test split, seed ${seed}), ${minutes.toFixed(1)} min\n${scaleNote}\n`,
  );
  process.stdout.write(
    `load average ${loadStart.map((l) => l.toFixed(2)).join(' ')} at start, ${loadEnd.map((l) => l.toFixed(2)).join(' ')} at end (${cpus().length} cpus)\n\n`,
  );
  process.stdout.write(markdownTable(phases));
  process.stdout.write(`\nTargets (issue #10):\n${targetLines(targets)}`);
  const warning = scaleWarning(phases, STRONG);
  if (warning) process.stdout.write(`${warning}\n`);

  const report = {
    generated_at: new Date().toISOString(),
    command: `npm run bench:latency -- ${process.argv.slice(2).join(' ')}`.trim(),
    time_scale: scale,
    note: scaleNote,
    warning,
    prompts: prompts.length,
    seed,
    minutes,
    load_average: { start: loadStart, end: loadEnd, cpus: cpus().length },
    farm_timings: stack.timings,
    phases,
    targets,
  };
  for (const file of [args.out, args.plot]) mkdirSync(dirname(resolve(file)), { recursive: true });
  writeFileSync(resolve(args.out), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(resolve(args.plot), latencySvg(phases, `Live latency vs cost, ${prompts.length} prompts, time scale ${scale}`));
  log(`wrote ${args.out} and ${args.plot}`);
}

/** The presets the running config offers (GET /v1/models), the default policy and both single models. */
async function defaultPolicies(apiUrl: string): Promise<string[]> {
  const res = await fetch(`${apiUrl}/models`);
  const ids = new Set(((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id));
  const presets = PRESETS.filter((p) => ids.has(p));
  if (presets.length === 0) log(`the config has none of ${PRESETS.join(', ')}: ${STAND_IN} stands in`);
  return [...(presets.length ? presets : [STAND_IN]), 'cascade', STRONG, CHEAP];
}

async function runPhase(
  stack: LatencyStack,
  policy: string,
  concurrency: number,
  prompts: Awaited<ReturnType<typeof loadPrompts>>,
  maxMs: number,
  timeoutMs: number,
  dump: ((line: object) => void) | null,
): Promise<Phase> {
  await stack.farmReset();
  const done: { prompt: (typeof prompts)[number]; timing: Awaited<ReturnType<typeof streamChat>> }[] = [];
  let next = 0;
  const load = await runLoad({
    concurrency,
    requests: prompts.length,
    maxMs,
    call: async () => {
      const prompt = prompts[next++]!;
      const timing = await streamChat(stack.apiUrl, policy, prompt.row.prompt, timeoutMs);
      done.push({ prompt, timing });
      return { workflowId: timing.workflowId };
    },
  });
  const byWorkflow = new Map<string, Attempt[]>();
  for (const a of await stack.farmLog()) {
    const wf = a.request_id?.split('/')[0];
    if (wf) byWorkflow.set(wf, [...(byWorkflow.get(wf) ?? []), a]);
  }
  const records: RequestRecord[] = done.map(({ prompt, timing }) => {
    const attempts = byWorkflow.get(timing.workflowId ?? '') ?? [];
    const { content, ...seen } = timing;
    dump?.({ policy, concurrency, id: prompt.row.id, ...seen, chars: content.length, farm_attempts: attempts });
    return recordOf(prompt, timing, attempts, stack.timings);
  });
  const s = summarisePhase(policy, concurrency, records, load.wallMs);
  const firstError = records.find((r) => r.error)?.error;
  log(
    `${policy} c=${concurrency}: ${s.requests} in ${s.wall_s.toFixed(0)} s, ttft p50 ${Math.round(s.ttft_p50_ms)} ms, total p50 ${Math.round(s.latency_p50_ms)} ms${s.errors ? `, ${s.errors} errors (${firstError})` : ''}${s.not_recorded_answers ? `, ${s.not_recorded_answers} answers not the recording` : ''}`,
  );
  return { summary: s, records };
}

main().catch((err: Error) => {
  log(err.stack ?? err.message);
  process.exit(1);
});
