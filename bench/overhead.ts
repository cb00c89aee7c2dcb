/**
 * `npm run bench:overhead`: the latency the durable path adds over calling the same farm pool
 * directly. Runs the production process layout (scripts/lib/stack.ts: Temporal dev server with a
 * persistence file, farm, one process per pool worker, router worker, API) with the zero-latency
 * farm (config/farm.test.yaml), then, in one run and in alternating blocks:
 *   baseline  the openai client streaming from the farm's cpu pool (the same upstream call the
 *             pool activity makes: same prompt, same model, stream with usage)
 *   model     the openai client calling the API with model Mixtral (a one-step durable call)
 *   cascade   the openai client calling the API with model `cascade` (default policy: the
 *             evaluator runs and accepts Mixtral's answer at step 1)
 *   floor     Temporal alone: a workflow running one no-op activity on another task queue, each
 *             worker its own process (bench/floor/), started with the Temporal client directly —
 *             what the same dev server costs before Cascade adds anything
 *   peer      with `--peer litellm`: LiteLLM proxy (PyPI, installed into .tools/litellm-venv on
 *             first use) in front of the same farm pool, 1 and 2 worker processes, non-streaming
 *             and streaming: a non-durable gateway measured in the same run (bench/lib/overhead-peer.ts)
 * at concurrency 1 and 32, and prints p50/p95/p99, the differences and the ratios. Then it reads
 * the Temporal history of sampled requests to show where the added time goes.
 *
 * Temporal is a dev server the benchmark starts or, with `--temporal-address`, a server already
 * running there (e.g. `npm run cluster:postgres`); `--watch-pids name=pid,...` adds that server's
 * processes (and their children) to the CPU table.
 *
 *   npm run bench:overhead [-- --c1 300 --c32 2000 --max-seconds 60 --profile 60 --think-ms 0 --dispatch local --json --verbose]
 *                          [--metrics-ab]  (only metrics on against off: bench/lib/overhead-metrics-ab.ts)
 *                          [--peer litellm] [--temporal-address 127.0.0.1:7233 --watch-pids temporal=123,postgres=456]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCli } from '../common/cli.js';
import { Client, Connection } from '@temporalio/client';
import OpenAI from 'openai';
import { TEST_FARM_CONFIG } from '../farm/index.js';
import { createPrinter } from '../scripts/lib/log-lines.js';
import { CascadeStack } from '../scripts/lib/stack.js';
import { freePort } from '../scripts/temporal-dev-server.js';
import { runLoad, summarise, type CallResult, type LoadResult, type Percentiles, type Sample } from './lib/overhead-load.js';
import { profileRequests } from './lib/overhead-profile.js';
import { snapshot } from './lib/overhead-cpu.js';
import { PEER_DESCRIPTION, PEER_PATHS, PeerGateways } from './lib/overhead-peer.js';
import { comparePeers, renderTables, type Difference, type Profile } from './lib/overhead-report.js';
import { FLOOR_ACTIVITY_QUEUE, FLOOR_WORKFLOW_QUEUE } from './floor/worker.js';
import { parseDispatch, writeBenchConfig } from './lib/bench-config.js';
import { metricsAbApiEnv, runMetricsAb } from './lib/overhead-metrics-ab.js';

const MIXTRAL = 'mistralai/Mixtral-8x7B-Instruct-v0.1';
/** gsm8k-test-0: the farm replays Mixtral's recorded answer, which the default policy accepts. */
const PROMPT =
  "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?";
const MESSAGES = [{ role: 'user' as const, content: PROMPT }];
const PATHS = ['baseline', 'floor', 'model', 'cascade'] as const;
/** One of PATHS, or a peer path's id (`litellm-2w-stream`). */
type Path = string;
/** The durable paths: through the API, a cascade or model workflow, a pool worker. */
const DURABLE: readonly Path[] = ['model', 'cascade'];
const PATH_LABEL: Record<Path, string> = {
  baseline: 'direct to farm pool (baseline)',
  floor: 'Temporal alone: workflow + 1 activity (no HTTP, no model)',
  model: `durable: model ${MIXTRAL.split('/')[1]}`,
  cascade: 'durable: cascade (evaluated)',
  ...Object.fromEntries(PEER_PATHS.map((p) => [p.id, p.label])),
};
/** Blocks per phase: the paths alternate so that drift on a shared machine hits all of them. */
const ROUNDS = 3;

const USAGE = `usage: npm run bench:overhead [-- options]

The latency the durable path adds over calling the same farm pool directly (and over Temporal alone).
  --c1 300             requests per path at concurrency 1
  --c32 2000           requests per path at concurrency 32
  --max-seconds 60     time limit of each phase
  --warmup 150         warm-up requests
  --profile 60         requests whose Temporal history is read to show where the time goes
  --think-ms 0         pause of each caller between requests
  --db-dir <dir>       where the Temporal persistence file goes (default a temp dir)
  --dispatch <mode>    every pool's dispatch mode, task-queue or local (default: as configured)
  --metrics-ab         only what Prometheus metrics add: the cascade on an API process with
                       metrics against one without (CASCADE_METRICS=off), alternating blocks
  --metrics-ab-off 2   the API process without metrics (1 or 2; run both, the processes differ)
  --json               print one JSON report
  --verbose            show the stack's output`;

const { values: args } = parseCli(USAGE, {
  options: {
    c1: { type: 'string', default: '300' },
    c32: { type: 'string', default: '2000' },
    'max-seconds': { type: 'string', default: '60' },
    warmup: { type: 'string', default: '150' },
    profile: { type: 'string', default: '60' },
    /** Pause of each caller between its requests (0: closed loop, back to back). */
    'think-ms': { type: 'string', default: '0' },
    /** Where the Temporal persistence file goes (default: a temp dir; /dev/shm takes fsync out). */
    'db-dir': { type: 'string' },
    /** A non-durable gateway measured in the same run (only `litellm`). */
    peer: { type: 'string' },
    /** Use the Temporal server already running there instead of starting a dev server. */
    'temporal-address': { type: 'string' },
    /** `name=pid,...`: processes of that server (and their children) to count in the CPU table. */
    'watch-pids': { type: 'string' },
    /** Every pool's dispatch mode for this run (default: as config/cascade.yaml says). */
    dispatch: { type: 'string' },
    /** Only the metrics A/B: the two API processes, one with CASCADE_METRICS=off (bench/lib/overhead-metrics-ab.ts). */
    'metrics-ab': { type: 'boolean', default: false },
    /** Which API process runs without metrics in the A/B (1 or 2): run both to cancel what differs between them. */
    'metrics-ab-off': { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
});

const log = (text: string) => process.stderr.write(`[bench] ${text}\n`);
const clientCpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

interface PhaseResult {
  concurrency: number;
  path: Path;
  stats: Percentiles;
  samples: Sample[];
  /** CPU ms per request, by process (`client` is this benchmark's own process). */
  cpu: Record<string, number>;
}

/** `temporal=123,postgres=456` → name → pid; throws naming the bad entry. */
function parseWatchPids(value: string | undefined): Map<string, number> {
  const pids = new Map<string, number>();
  for (const entry of (value ?? '').split(',').filter(Boolean)) {
    const m = /^([\w:-]+)=(\d+)$/.exec(entry.trim());
    if (!m) throw new Error(`--watch-pids: "${entry}" is not name=pid`);
    pids.set(m[1]!, Number(m[2]));
  }
  return pids;
}

async function main(): Promise<void> {
  if (args.peer !== undefined && args.peer !== 'litellm') throw new Error(`--peer: "${args.peer}" is not a known peer (litellm)`);
  const watched = parseWatchPids(args['watch-pids']);
  const metricsAbOff = Number(args['metrics-ab-off']);
  if (metricsAbOff !== 1 && metricsAbOff !== 2) throw new Error(`--metrics-ab-off: "${args['metrics-ab-off']}" is not 1 or 2`);
  const external = args['temporal-address'];
  const temporalKind = external ? `external server at ${external}` : 'dev server started by the benchmark';
  const dir = mkdtempSync(join(tmpdir(), 'cascade-bench-'));
  const print = createPrinter((s) => {
    if (args.verbose || s.startsWith('cascade ')) process.stderr.write(s);
  });
  const env: NodeJS.ProcessEnv = {
    // Pools wide enough that the request path, not a pool's configured capacity, is measured.
    CASCADE_CONFIG: writeBenchConfig(dir, { dispatch: parseDispatch(args.dispatch, '--dispatch') }),
    PORT: String(await freePort()),
    CASCADE_CODEC_PORT: String(await freePort()),
    CASCADE_FARM_RANDOM_PORTS: '1',
    CASCADE_KEYS_FILE: join(dir, 'api-keys.json'), // a keys file in the checkout would turn authentication on
    ...(external
      ? { TEMPORAL_ADDRESS: external, CASCADE_TEMPORAL_EXTERNAL: '1' }
      : {
          TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
          CASCADE_UI_PORT: String(await freePort()),
          CASCADE_TEMPORAL_DB: join(args['db-dir'] ? mkdtempSync(join(args['db-dir'], 'cascade-bench-')) : dir, 'temporal.db'),
        }),
  };
  const stack = new CascadeStack({
    env,
    print,
    farmConfigPath: TEST_FARM_CONFIG,
    ...(args['metrics-ab'] && { apiEnv: metricsAbApiEnv(metricsAbOff) }),
    onFatal: (reason) => {
      log(reason);
      process.exit(1);
    },
  });
  let floor: FloorWorkers | null = null;
  let peers: PeerGateways | null = null;
  const cleanup = async () => {
    floor?.stop();
    await peers?.stop();
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  // A terminal's Ctrl-C and a `timeout` both stop everything the benchmark started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanup().then(() => process.exit(130)));
  try {
    await stack.start();
    if (args['metrics-ab']) {
      const phases = (
        [
          [1, Number(args.c1)],
          [32, Number(args.c32)],
        ] as const
      ).filter(([, n]) => n > 0);
      const rounds = 2 * ROUNDS;
      process.stdout.write(
        await runMetricsAb(stack, {
          messages: MESSAGES,
          phases,
          rounds,
          warmup: Number(args.warmup),
          maxMs: Number(args['max-seconds']) * 1000,
          off: metricsAbOff,
          log,
        }),
      );
      return;
    }
    floor = await startFloorWorkers(stack.config.raw.temporal.address);
    if (args.peer) peers = await PeerGateways.start({ upstreamBaseUrl: stack.farmUrls.get('cpu')!, model: MIXTRAL, messages: MESSAGES, dir, say: log });
    await run(stack, floor, peers, watched, temporalKind);
  } finally {
    await cleanup();
  }
}

interface FloorWorkers {
  pids: Map<string, number>;
  stop(): void;
}

/** The Temporal floor's two workers, each its own process like the router and a pool worker. */
async function startFloorWorkers(address: string): Promise<FloorWorkers> {
  const script = fileURLToPath(new URL('./floor/worker.ts', import.meta.url));
  const children = (['workflow', 'activity'] as const).map((role) => ({
    role,
    child: spawn(process.execPath, ['--import', 'tsx', script, role, address], { stdio: ['ignore', 'pipe', 'inherit'] }),
  }));
  const stop = () => children.forEach(({ child }) => child.kill('SIGKILL'));
  try {
    await Promise.all(
      children.map(
        ({ role, child }) =>
          new Promise<void>((resolve, reject) => {
            child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
            child.once('exit', (code) => reject(new Error(`floor ${role} worker exited (${code}) before it was ready`)));
          }),
      ),
    );
  } catch (err) {
    stop();
    throw err;
  }
  return { pids: new Map(children.map(({ role, child }) => [`floor:${role}`, child.pid!])), stop };
}

async function run(stack: CascadeStack, floor: FloorWorkers, peers: PeerGateways | null, watched: Map<string, number>, temporalKind: string): Promise<void> {
  const farmUrl = stack.farmUrls.get('cpu');
  if (!farmUrl) throw new Error('the farm has no cpu pool');
  const farm = new OpenAI({ baseURL: farmUrl, apiKey: 'bench', maxRetries: 0, timeout: 30_000 });
  const api = new OpenAI({ baseURL: `${stack.apiBase}/v1`, apiKey: 'bench', maxRetries: 0, timeout: 30_000 });
  const messages = MESSAGES;
  const connection = await Connection.connect({ address: stack.config.raw.temporal.address });
  const temporal = new Client({ connection, namespace: stack.config.raw.temporal.namespace });
  let floorIds = 0;
  const pids = () => new Map([...stack.pids(), ...floor.pids, ...(peers?.pids() ?? []), ...watched]);
  const paths: Path[] = [...PATHS, ...(peers ? PEER_PATHS.map((p) => p.id) : [])];

  const calls: Record<Path, () => Promise<CallResult>> = {
    ...(peers ? Object.fromEntries(PEER_PATHS.map((p) => [p.id, peers.call(p)])) : {}),
    async baseline() {
      const stream = await farm.chat.completions.create({ model: MIXTRAL, messages, stream: true, stream_options: { include_usage: true } });
      let finish: string | null = null;
      for await (const chunk of stream) finish = chunk.choices[0]?.finish_reason ?? finish;
      if (finish !== 'stop') throw new Error(`stream ended with ${finish}`);
      return { workflowId: null };
    },
    async floor() {
      const workflowId = `bench-floor-${process.pid}-${++floorIds}`;
      const echoed = await temporal.workflow.execute('floorWorkflow', { taskQueue: FLOOR_WORKFLOW_QUEUE, workflowId, args: [FLOOR_ACTIVITY_QUEUE, PROMPT] });
      if (echoed !== PROMPT) throw new Error('the floor workflow returned something else');
      return { workflowId };
    },
    async model() {
      const { data, response } = await api.chat.completions.create({ model: MIXTRAL, messages }).withResponse();
      if (data.model !== MIXTRAL) throw new Error(`answered by ${data.model}`);
      return { workflowId: response.headers.get('x-cascade-workflow-id') };
    },
    async cascade() {
      const { data, response } = await api.chat.completions.create({ model: 'cascade', messages }).withResponse();
      const trace = (data as unknown as { cascade: { final_step: number; escalations: number } }).cascade;
      if (trace.final_step !== 1 || trace.escalations !== 0) throw new Error(`cascade did not accept step 1 (final step ${trace.final_step})`);
      return { workflowId: response.headers.get('x-cascade-workflow-id') };
    },
  };

  const loadStart = loadavg().map((l) => +l.toFixed(2));
  const maxMs = Number(args['max-seconds']) * 1000;
  const warmup = Number(args.warmup);
  log(`warming up (${warmup} requests per path at c=1, then ${warmup} at c=32) ...`);
  const thinkMs = Number(args['think-ms']);
  for (const path of paths) await runLoad({ concurrency: 1, requests: warmup, maxMs, thinkMs, call: calls[path]! });
  if (Number(args.c32) > 0) for (const path of paths) await runLoad({ concurrency: 32, requests: warmup, maxMs, thinkMs, call: calls[path]! });

  const results: PhaseResult[] = [];
  const phases = (
    [
      [1, Number(args.c1)],
      [32, Number(args.c32)],
    ] as const
  ).filter(([, n]) => n > 0);
  for (const [concurrency, requests] of phases) {
    const merged = new Map<Path, LoadResult>(paths.map((p) => [p, { samples: [], wallMs: 0 }]));
    const cpu = new Map<Path, Map<string, number>>(paths.map((p) => [p, new Map()]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const path of paths) {
        log(`c=${concurrency} ${path}: block ${round + 1}/${ROUNDS} ...`);
        const before = snapshot(pids()).set('client', clientCpuMs());
        const r = await runLoad({ concurrency, requests: Math.ceil(requests / ROUNDS), maxMs: maxMs / ROUNDS, thinkMs, call: calls[path]! });
        const after = snapshot(pids()).set('client', clientCpuMs());
        const m = merged.get(path)!;
        m.samples.push(...r.samples);
        m.wallMs += r.wallMs;
        const totals = cpu.get(path)!;
        for (const [name, end] of after) totals.set(name, (totals.get(name) ?? 0) + end - (before.get(name) ?? NaN));
      }
    }
    for (const path of paths) {
      const load = merged.get(path)!;
      const firstError = load.samples.find((s) => s.error)?.error;
      if (firstError) log(`c=${concurrency} ${path}: ${load.samples.filter((s) => s.error).length} errors, e.g. ${firstError}`);
      const perRequest = Object.fromEntries(
        [...cpu.get(path)!].filter(([, ms]) => Number.isFinite(ms)).map(([name, ms]) => [name, ms / Math.max(1, load.samples.length)]),
      );
      results.push({ concurrency, path, stats: summarise(load), samples: load.samples, cpu: perRequest });
    }
  }

  const profiles: Profile[] = [];
  try {
    for (const r of results.filter((r) => DURABLE.includes(r.path))) {
      log(`profiling c=${r.concurrency} ${r.path} from ${args.profile} workflow histories ...`);
      profiles.push({ concurrency: r.concurrency, path: r.path, ...(await profileRequests(temporal, r.samples, Number(args.profile))) });
    }
  } finally {
    await connection.close();
  }

  /** Each durable path against a reference path measured in the same run. */
  const against = (reference: Path) =>
    results
      .filter((r) => DURABLE.includes(r.path) || (reference === 'baseline' && r.path === 'floor'))
      .map((r) => {
        const base = results.find((b) => b.path === reference && b.concurrency === r.concurrency)!.stats;
        const diff = (q: 'p50' | 'p95' | 'p99') => ({ [`${q}_added_ms`]: r.stats[q] - base[q], [`${q}_ratio`]: r.stats[q] / base[q] });
        return { concurrency: r.concurrency, path: r.path, ...diff('p50'), ...diff('p95'), ...diff('p99') } as Difference;
      });
  const rows = results.map((r) => ({ concurrency: r.concurrency, path: r.path, ...r.stats, cpu_ms_per_request: r.cpu }));
  const overhead = against('baseline');
  const aboveFloor = against('floor');
  // A shared machine: the load average says how much else was running.
  const machine = {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: process.platform,
    loadavg_start: loadStart,
    loadavg_end: loadavg().map((l) => +l.toFixed(2)),
  };
  const report = {
    machine,
    setup: {
      farm: 'config/farm.test.yaml (zero latency), pool cpu',
      prompt: 'gsm8k-test-0',
      model: MIXTRAL,
      rounds: ROUNDS,
      warmup,
      log_level: process.env.LOG_LEVEL ?? 'info',
      think_ms: thinkMs,
      temporal: temporalKind,
      peer: peers ? PEER_DESCRIPTION : null,
    },
    results: rows,
    overhead,
    above_floor: aboveFloor,
    peer_comparison: comparePeers(
      rows,
      PEER_PATHS.map((p) => p.id),
    ),
    profile: profiles,
  };
  if (args.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    const label = (path: string) => PATH_LABEL[path] ?? path;
    process.stdout.write(
      renderTables({ results: rows, overhead, aboveFloor, peers: report.peer_comparison, profiles, machine, thinkMs, temporal: temporalKind, label }),
    );
  }
}

main().catch((err) => {
  log(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
