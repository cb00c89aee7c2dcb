/**
 * `npm run bench:chaos`: availability and durability of the embedded stack (the `npm start`
 * process layout: two API processes on one port, two router workers, one worker per pool) while
 * a driver kill -9s a random router, pool or API process every few seconds. Requests are the
 * mix of bench/lib/chaos-load.ts (streaming and not, every third with an Idempotency-Key that its
 * caller retries for a minute, every fourth escalating), sent through the OpenAI SDK with its
 * default retries. First a calm run (no kills) for the latency baseline, then the chaos run.
 *
 * Reports: requests lost (no answer in the end), client-visible errors by type, p50/p99 against
 * the calm run, finished model calls paid twice (the farm's attempt log: one model call id that
 * the farm answered in full more than once), workflows nobody received, and each process's and
 * role's uptime. The farm answers after 150 ms with 300 tokens/s, so requests take about a second
 * and a kill always finds some in flight.
 *
 *   npm run bench:chaos [-- --requests 300 --calm 100 --seconds 180 --concurrency 8 --kill-every 3000-6000 --seed 7 --json]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import OpenAI from 'openai';
import { parse as parseYaml, stringify } from 'yaml';
import { REPO_ROOT } from '../config/load.js';
import { TEST_FARM_CONFIG, type Attempt } from '../farm/index.js';
import { seededRandom } from '../common/random.js';
import { createPrinter } from '../scripts/lib/log-lines.js';
import { CascadeStack, isolatedStackEnv } from '../scripts/lib/stack.js';
import { percentile, requestMix, runCallers, type ChaosOutcome } from './lib/chaos-load.js';
import { UptimeTracker } from './lib/chaos-uptime.js';

const USAGE = `usage: npm run bench:chaos [-- options]
  --requests N      requests in the chaos run (default 300; the issue's figure is 1000)
  --calm N          requests in the calm run before it, the latency baseline (default requests/3, at most 300)
  --seconds S       stop starting requests in either run after S seconds (default 180)
  --concurrency C   concurrent callers (default 8)
  --kill-every A-B  pause between two kills, ms, drawn uniformly (default 3000-6000)
  --seed N          seed of the kill driver (default 7)
  --json            print the result as JSON instead of tables
  --verbose         show the stack's output (stderr)
  --help            this text`;

function options() {
  try {
    const { values } = parseArgs({
      strict: true,
      options: {
        requests: { type: 'string', default: '300' },
        calm: { type: 'string' },
        seconds: { type: 'string', default: '180' },
        concurrency: { type: 'string', default: '8' },
        'kill-every': { type: 'string', default: '3000-6000' },
        seed: { type: 'string', default: '7' },
        json: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    const int = (name: string, v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: "${v}" is not a whole number`);
      return n;
    };
    const [killMin, killMax] = values['kill-every'].split('-').map((v) => int('kill-every', v));
    if (killMin === undefined || killMax === undefined || killMax < killMin) throw new Error('--kill-every: expected A-B with A <= B');
    const requests = int('requests', values.requests);
    return {
      requests,
      calm: values.calm !== undefined ? int('calm', values.calm) : Math.min(300, Math.ceil(requests / 3)),
      seconds: int('seconds', values.seconds),
      concurrency: Math.max(1, int('concurrency', values.concurrency)),
      killMin,
      killMax,
      seed: int('seed', values.seed),
      json: values.json,
      verbose: values.verbose,
    };
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

const log = (text: string) => process.stderr.write(`[chaos] ${text}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The test farm's layout and recordings with a little latency: ~1 s per request. */
function writeFarmConfig(dir: string): string {
  const farm = parseYaml(readFileSync(TEST_FARM_CONFIG, 'utf8')) as { data_root: string; pools: Record<string, { models: Record<string, object> }> };
  farm.data_root = resolve(dirname(TEST_FARM_CONFIG), farm.data_root);
  for (const pool of Object.values(farm.pools))
    for (const name of Object.keys(pool.models)) pool.models[name] = { ttft_ms: 150, tokens_per_s: 300, jitter: 0.2 };
  const file = join(dir, 'farm.yaml');
  writeFileSync(file, stringify(farm));
  return file;
}

function summarise(outcomes: ChaosOutcome[]) {
  const ok = outcomes.filter((o) => o.ok);
  const errors: Record<string, number> = {};
  for (const o of outcomes) for (const e of o.errors) errors[e] = (errors[e] ?? 0) + 1;
  return {
    sent: outcomes.length,
    answered: ok.length,
    lost: outcomes.length - ok.length,
    lost_by_last_error: Object.fromEntries(Object.entries(countBy(outcomes.filter((o) => !o.ok).map((o) => o.errors.at(-1) ?? '?')))),
    client_visible_errors: errors,
    requests_that_saw_an_error: outcomes.filter((o) => o.errors.length > 0).length,
    streaming: outcomes.filter((o) => o.request.stream).length,
    with_idempotency_key: outcomes.filter((o) => o.request.idempotencyKey).length,
    escalated: ok.filter((o) => o.escalated).length,
    p50_ms: percentile(
      ok.map((o) => o.ms),
      50,
    ),
    p99_ms: percentile(
      ok.map((o) => o.ms),
      99,
    ),
  };
}

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/** Model calls (one id per workflow, step and purpose) that the farm answered in full more than once. */
function paidTwice(attempts: Attempt[], kills: { t: number; name: string }[]) {
  const oks = new Map<string, Attempt[]>();
  for (const a of attempts) if (a.outcome === 'ok' && a.request_id) oks.set(a.request_id, [...(oks.get(a.request_id) ?? []), a]);
  const twice = [...oks.entries()].filter(([, list]) => list.length > 1);
  // A pool worker killed after the farm answered but before Temporal recorded the result: the
  // answer never reached the workflow, so the retry is a new call, not a finished one paid again.
  const afterPoolKill = twice.filter(([, list]) => kills.some((k) => k.name.startsWith('pool:') && k.t >= list[0]!.t_ms && k.t <= list[1]!.t_ms));
  return { calls: oks.size, answered_more_than_once: twice.length, of_which_after_a_pool_worker_kill: afterPoolKill.length, ids: twice.map(([id]) => id) };
}

async function workflowCounts(address: string, since: Date) {
  const connection = await Connection.connect({ address });
  try {
    const client = new Client({ connection });
    const base = `WorkflowType = 'cascadeWorkflow' AND StartTime >= '${since.toISOString()}'`;
    const count = async (extra = '') => (await client.workflow.count(`${base}${extra}`)).count;
    return {
      started: await count(),
      completed: await count(` AND ExecutionStatus = 'Completed'`),
      failed: await count(` AND ExecutionStatus = 'Failed'`),
      timed_out: await count(` AND ExecutionStatus = 'TimedOut'`),
      running: await count(` AND ExecutionStatus = 'Running'`),
    };
  } finally {
    await connection.close();
  }
}

async function main(): Promise<void> {
  const opts = options();
  const dir = mkdtempSync(join(tmpdir(), 'cascade-chaos-'));
  const uptime = new UptimeTracker();
  const stack = new CascadeStack({
    env: {
      ...(await isolatedStackEnv(dir)),
    },
    farmConfigPath: writeFarmConfig(dir),
    print: createPrinter((line) => {
      uptime.onLine(line);
      if (opts.verbose) process.stderr.write(line);
    }),
    onFatal: (reason) => log(`fatal: ${reason}`),
  });
  const stop = async () => {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    log('starting the stack ...');
    await stack.start();
    uptime.startWith([...stack.pids().keys()].filter(isKillable));
    const openai = new OpenAI({ baseURL: `${stack.apiBase}/v1`, apiKey: 'unused' }); // the SDK's default retries
    const prompts = readFileSync(join(REPO_ROOT, '..', 'shared', 'data', 'routellm', 'gsm8k.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).prompt as string);
    const tag = `chaos-${Date.now()}`;

    log(`calm run: ${opts.calm} requests, concurrency ${opts.concurrency}, no kills`);
    const calm = await runCallers(openai, requestMix(prompts, opts.calm, `${tag}-calm`), opts.concurrency, Date.now() + opts.seconds * 1000);

    log(`chaos run: ${opts.requests} requests, a kill -9 every ${opts.killMin}-${opts.killMax} ms`);
    const chaosStart = new Date();
    uptime.begin();
    const kills: { t: number; name: string; pid: number }[] = [];
    let chaosOver = false;
    const random = seededRandom(opts.seed);
    const killer = (async () => {
      while (!chaosOver) {
        await sleep(opts.killMin + random() * (opts.killMax - opts.killMin));
        if (chaosOver) break;
        const victims = [...stack.pids()].filter(([name]) => isKillable(name) && uptime.isUp(name));
        if (victims.length === 0) continue;
        const [name, pid] = victims[Math.floor(random() * victims.length)]!;
        kills.push({ t: Date.now(), name, pid });
        process.kill(pid, 'SIGKILL');
      }
    })();
    const chaos = await runCallers(openai, requestMix(prompts, opts.requests, tag), opts.concurrency, Date.now() + opts.seconds * 1000);
    chaosOver = true;
    await killer;
    const uptimes = uptime.end();
    for (let i = 0; i < 600 && !uptime.allUp(); i++) await sleep(100); // let restarts finish before the next look

    const farmBase = [...stack.farmUrls.values()][0]!.replace(/\/v1$/, '');
    const farmLog = ((await (await fetch(`${farmBase}/farm/log`)).json()) as { attempts: Attempt[] }).attempts.filter((a) => a.t_ms >= chaosStart.getTime());
    const result = {
      options: opts,
      calm: summarise(calm),
      chaos: summarise(chaos),
      kills: countBy(kills.map((k) => k.name.replace(/#\d+$/, ''))),
      kill_count: kills.length,
      chaos_seconds: (Date.now() - chaosStart.getTime()) / 1000,
      paid_twice: paidTwice(farmLog, kills),
      workflows: await workflowCounts(stack.config.raw.temporal.address, chaosStart),
      uptime: uptimes,
    };
    if (opts.json) console.log(JSON.stringify(result, null, 2));
    else printReport(result);
  } finally {
    await stop();
  }
}

const isKillable = (name: string) => /^(router|api|pool:)/.test(name);

function printReport(r: Record<string, any>): void {
  const row = (label: string, calm: unknown, chaos: unknown) => console.log(`| ${label} | ${String(calm)} | ${String(chaos)} |`);
  console.log(`\n| | calm (no kills) | chaos (${r.kill_count} kill -9 in ${r.chaos_seconds.toFixed(0)} s) |\n|---|--:|--:|`);
  row('requests sent', r.calm.sent, r.chaos.sent);
  row('answered', r.calm.answered, r.chaos.answered);
  row('**lost** (no answer in the end)', r.calm.lost, r.chaos.lost);
  row('requests that saw an error (after SDK retries)', r.calm.requests_that_saw_an_error, r.chaos.requests_that_saw_an_error);
  row(
    'streaming / with Idempotency-Key / escalated',
    `${r.calm.streaming} / ${r.calm.with_idempotency_key} / ${r.calm.escalated}`,
    `${r.chaos.streaming} / ${r.chaos.with_idempotency_key} / ${r.chaos.escalated}`,
  );
  row('p50 / p99 ms', `${r.calm.p50_ms} / ${r.calm.p99_ms}`, `${r.chaos.p50_ms} / ${r.chaos.p99_ms}`);
  console.log(
    `\nclient-visible errors by type (chaos): ${JSON.stringify(r.chaos.client_visible_errors)}; lost by last error: ${JSON.stringify(r.chaos.lost_by_last_error)}`,
  );
  console.log(`kills by role: ${JSON.stringify(r.kills)}`);
  console.log(
    `model calls answered in full more than once (paid twice): ${r.paid_twice.answered_more_than_once} of ${r.paid_twice.calls} (${r.paid_twice.of_which_after_a_pool_worker_kill} right after a pool worker was killed)`,
  );
  console.log(`workflows started during the chaos run: ${JSON.stringify(r.workflows)}`);
  console.log(`\n| process / role | uptime during the chaos run |\n|---|--:|`);
  for (const [name, share] of Object.entries(r.uptime as Record<string, number>)) console.log(`| ${name} | ${(share * 100).toFixed(1)}% |`);
}

main().catch((err) => {
  console.error(`[chaos] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
