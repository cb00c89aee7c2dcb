/**
 * A whole Cascade stack for one test file, on real servers: the model farm (random ports), a
 * Temporal server, router and pool workers (in this process, or as child processes that a test
 * can kill -9), and the API on a random port. Task queues are unique per stack, so test files
 * can share one Temporal server.
 */
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import OpenAI from 'openai';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { loadFarmConfig, startFarm, type Attempt, type FarmConfig, type RunningFarm } from '../../farm/index.js';
import { configSchema } from '../../config/schema.js';
import { loadConfig, REPO_ROOT, type CascadeConfig } from '../../config/load.js';
import { createRouterWorker, deploymentHealth } from '../../workers/router.js';
import { createPoolWorker } from '../../workers/pool.js';
import { createApp } from '../../server/app.js';
import { LearnedStats } from '../../activities/learned.js';
import { freePort } from '../../scripts/temporal-dev-server.js';
import { releaseTestTemporal, testTemporalAddress } from './temporal.js';
import { installRuntime } from '../../workers/runtime.js';
import { dataConverter, encryptionCodec } from '../../workers/connection.js';
import type { EncryptionCodec } from '../../common/codec.js';

export const MIXTRAL = 'mistralai/Mixtral-8x7B-Instruct-v0.1';
export const GPT4 = 'gpt-4-1106-preview';

export interface StackOptions {
  /** Edits the raw cascade config (already holding the farm's ports) before it is validated. */
  configure?: (raw: Record<string, any>, farmUrl: (pool: string) => string) => void;
  /** The farm to run (default: config/farm.test.yaml, the default layout with zero latency). */
  farmConfig?: FarmConfig;
  /** Pools whose workers run as child processes (so a test can kill -9 them). */
  poolProcesses?: string[];
  /** Run the router worker as a child process. */
  routerProcess?: boolean;
  /** Run the API as a child process. */
  apiProcess?: boolean;
  /** Pools that get no worker at all (to test a pool with no capacity). */
  poolsWithoutWorkers?: string[];
  /** A Temporal server of the test's own (e.g. one it restarts) instead of the shared one. */
  temporalAddress?: string;
}

export interface Stack {
  apiUrl: string;
  openai: OpenAI;
  config: CascadeConfig;
  configFile: string;
  /** A client with the stack's payload codec (raw histories it fetches are still encrypted). */
  client: Client;
  /** The payload codec the stack's processes use (null when a test turned encryption off). */
  codec: EncryptionCodec | null;
  farm: RunningFarm;
  farmUrl(pool: string): string;
  farmLog(filter?: { request_id?: string; pool?: string; model?: string }): Promise<Attempt[]>;
  farmReset(): Promise<void>;
  /** Child processes by name: `pool:<name>`, `router`, `api`. */
  child(name: string): ChildProcess;
  /** The /metrics URL a child process reported when it became ready (`pool:<name>`, `router`). */
  metricsUrl(name: string): string;
  /** (Re)starts a child process: `pool:<name>`, `router` or `api`. */
  startChild(name: string): Promise<ChildProcess>;
  close(): Promise<void>;
}

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** The test config: the default layout with short timeouts so fault tests run in seconds. */
export function baseTestConfig(ports: Record<string, string>, suffix: string): Record<string, any> {
  const tq = (pool: string) => `test-${suffix}-pool-${pool}`;
  return {
    server: { host: '127.0.0.1', port: 0, max_body_bytes: 65536, log_prompts: false, forward_headers: ['x-farm-fault', 'x-farm-fault-delay-ms'] },
    temporal: { address: 'set-below', namespace: 'default', task_queue: `test-${suffix}-router` },
    retry: { initial_interval_ms: 100, backoff_coefficient: 2, maximum_interval_ms: 1000, maximum_attempts: 3, schedule_to_start_timeout_ms: 1500 },
    breaker: { failure_threshold: 3, open_ms: 3000 },
    pools: {
      cpu: { task_queue: tq('cpu'), concurrency: 8 },
      'gpu-a': { task_queue: tq('gpu-a'), concurrency: 8 },
      api: { task_queue: tq('api'), concurrency: 16 },
    },
    models: {
      [MIXTRAL]: {
        aliases: ['mixtral'],
        input_usd_per_1m: 0.24,
        output_usd_per_1m: 0.24,
        context_window: 32768,
        latency_ms: { p50: 200, p99: 2000 },
        timeouts: { first_token_ms: 1500, stream_idle_ms: 1000, attempt_ms: 10000 },
        deployments: [
          { pool: 'cpu', base_url: ports.cpu },
          { pool: 'gpu-a', base_url: ports['gpu-a'] },
        ],
      },
      [GPT4]: {
        aliases: ['gpt-4'],
        input_usd_per_1m: 24.7,
        output_usd_per_1m: 24.7,
        context_window: 128000,
        latency_ms: { p50: 300, p99: 3000 },
        timeouts: { first_token_ms: 1500, stream_idle_ms: 1000, attempt_ms: 10000 },
        deployments: [{ pool: 'api', base_url: ports.api }],
      },
      'sim-small': {
        input_usd_per_1m: 0.1,
        output_usd_per_1m: 0.1,
        context_window: 8192,
        latency_ms: { p50: 100, p99: 1000 },
        timeouts: { first_token_ms: 1500, stream_idle_ms: 1000, attempt_ms: 10000 },
        deployments: [{ pool: 'gpu-a', base_url: ports['gpu-a'] }],
      },
      'sim-large': {
        input_usd_per_1m: 10,
        output_usd_per_1m: 30,
        context_window: 32768,
        latency_ms: { p50: 100, p99: 1000 },
        timeouts: { first_token_ms: 1500, stream_idle_ms: 1000, attempt_ms: 10000 },
        deployments: [{ pool: 'api', base_url: ports.api }],
      },
    },
    policies: {
      default: {
        steps: [
          { model: MIXTRAL, evaluator: { type: 'min', of: [{ type: 'validators' }, { type: 'arithmetic', when_unchecked: 0.6 }] }, threshold: 0.5 },
          { model: GPT4 },
        ],
        deadline_ms: 20000,
        max_cost_usd: 0.5,
      },
      simulated: {
        steps: [{ model: 'sim-small', evaluator: { type: 'logprob' }, threshold: 0.6 }, { model: 'sim-large' }],
        deadline_ms: 20000,
        max_cost_usd: 0.5,
      },
    },
    default_policy: 'default',
  };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  installRuntime(quiet);
  const suffix = randomBytes(4).toString('hex');
  const temporalAddress = opts.temporalAddress ?? (await testTemporalAddress());
  const farm = await startFarm(opts.farmConfig ?? (await loadFarmConfig(join(REPO_ROOT, 'config', 'farm.test.yaml'))), { portOverride: 0, logger: quiet });
  const farmUrl = (pool: string) => {
    const found = farm.pools.find((p) => p.name === pool);
    if (!found) throw new Error(`the farm has no pool ${pool}`);
    return found.baseUrl;
  };
  // Pools the farm lacks point nowhere; a custom farm's configure() replaces them.
  const urlOrNowhere = (pool: string) => farm.pools.find((p) => p.name === pool)?.baseUrl ?? 'http://127.0.0.1:9/v1';
  const raw = baseTestConfig({ cpu: urlOrNowhere('cpu'), 'gpu-a': urlOrNowhere('gpu-a'), api: urlOrNowhere('api') }, suffix);
  raw.temporal.address = temporalAddress;
  const dir = mkdtempSync(join(tmpdir(), 'cascade-test-'));
  raw.documents = { store_dir: join(dir, 'documents'), webhook_allow_hosts: ['127.0.0.1'] };
  // Encrypted as by default, with this stack's own key (child processes read the same file).
  raw.encryption = { key_file: join(dir, 'encryption-keys'), codec_port: 0 };
  // Hashed API keys of this stack only (a keys file turns authentication on).
  raw.keys = { file: join(dir, 'api-keys.json') };
  opts.configure?.(raw, farmUrl);
  // Tests assert exact ladders, which learning from traffic would change under repeated requests:
  // a policy learns only where a test says so (test/cascade/learn.test.ts).
  for (const policy of Object.values(raw.policies as Record<string, { learn?: unknown }>)) policy.learn ??= false;
  configSchema.parse(raw); // fail early with zod's message if a test wrote a bad config
  const configFile = join(dir, 'cascade.yaml');
  writeFileSync(configFile, stringify(raw));
  const config = loadConfig(configFile);

  const workerConnection = await NativeConnection.connect({ address: temporalAddress });
  const workers: Worker[] = [];
  const children = new Map<string, ChildProcess>();
  const metricsUrls = new Map<string, string>();
  let apiPort = 0;
  const startChild = async (name: string): Promise<ChildProcess> => {
    const [kind, pool] = name.split(':');
    const entry = kind === 'pool' ? ['workers/pool.ts', pool!] : kind === 'router' ? ['workers/router.ts'] : ['server/main.ts'];
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, entry[0]!), ...entry.slice(1)], {
      env: { ...process.env, CASCADE_CONFIG: configFile, LOG_LEVEL: 'info', PORT: String(apiPort) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.set(name, child);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        // TEST_CHILD_LOGS=1 shows what the child processes log (they log JSON to stdout).
        if (process.env.TEST_CHILD_LOGS) process.stderr.write(d.toString().replace(/^/gm, `[${name}] `));
        out += d.toString();
        const metrics = /"metrics":"(http[^"]+)"/.exec(out);
        if (metrics) metricsUrls.set(name, metrics[1]!);
        if (/"msg":"(pool worker|router worker|api) ready"/.test(out)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
    });
    return child;
  };

  const health = deploymentHealth(config);
  const learned = new LearnedStats(
    new Client({ connection: workerConnection, namespace: 'default', dataConverter: dataConverter(config) }),
    config.raw.temporal.task_queue,
    quiet,
  );
  if (opts.routerProcess) await startChild('router');
  else workers.push(await createRouterWorker({ config, connection: workerConnection, logger: quiet, health, learned }));
  for (const pool of Object.keys(config.raw.pools)) {
    if (opts.poolsWithoutWorkers?.includes(pool)) continue;
    if (opts.poolProcesses?.includes(pool)) await startChild(`pool:${pool}`);
    else workers.push(await createPoolWorker({ config, pool, connection: workerConnection, logger: quiet }));
  }
  const running = workers.map((w) => w.run());

  const clientConnection = await Connection.connect({ address: temporalAddress });
  const client = new Client({ connection: clientConnection, namespace: 'default', dataConverter: dataConverter(config) });
  let server: Server | null = null;
  if (opts.apiProcess) {
    apiPort = await freePort();
    await startChild('api');
  } else {
    // As server/main.ts does with `temporal.embedded_router`: the API's client shares the router
    // worker's connection (in this process) and starts workflows eagerly on it.
    const embedded = config.raw.temporal.embedded_router && !opts.routerProcess;
    const apiClient = embedded ? new Client({ connection: workerConnection, namespace: 'default', dataConverter: dataConverter(config) }) : client;
    server = createServer(createApp({ config, client: apiClient, logger: quiet, ...(embedded && { embeddedRouter: { health, learned } }) }));
    apiPort = await listen(server);
  }
  const apiUrl = `http://127.0.0.1:${apiPort}/v1`;
  const farmBase = farm.pools[0]!.baseUrl.replace(/\/v1$/, '');

  return {
    apiUrl,
    openai: new OpenAI({ baseURL: apiUrl, apiKey: 'test', maxRetries: 0, timeout: 60_000 }),
    config,
    configFile,
    client,
    codec: encryptionCodec(config),
    farm,
    farmUrl,
    async farmLog(filter = {}) {
      const qs = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined) as [string, string][]);
      const res = await fetch(`${farmBase}/farm/log?${qs}`);
      return ((await res.json()) as { attempts: Attempt[] }).attempts;
    },
    async farmReset() {
      await fetch(`${farmBase}/farm/reset`, { method: 'POST' });
      await fetch(`${farmBase}/farm/faults`, { method: 'DELETE' });
    },
    child: (name) => children.get(name)!,
    metricsUrl: (name) => metricsUrls.get(name) ?? `${name} reported no metrics URL`,
    startChild,
    async close() {
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server!.close(() => resolve()));
      }
      for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.allSettled(running);
      await workerConnection.close();
      await clientConnection.close();
      await farm.close();
      await releaseTestTemporal();
    },
  };
}
