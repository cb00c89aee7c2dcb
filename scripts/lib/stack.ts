/**
 * The whole Cascade stack as separate processes, the way `npm start` runs it: a Temporal dev
 * server with a persistence file, the model farm, one worker process per pool (times
 * `pools.<name>.workers`), `temporal.router_workers` router workers and `server.processes` API
 * processes, each on a private port behind the API port (scripts/lib/api-front.ts). Used by scripts/start.ts and by the
 * overhead benchmark (which needs the production process layout, not workers inside one process).
 *
 * Environment (from `env`): CASCADE_CONFIG, PORT (API port), CASCADE_UI_PORT (Temporal UI port),
 * CASCADE_CODEC_PORT (the UI's codec endpoint), CASCADE_PROMETHEUS_TARGETS (where the scrape targets
 * file goes when the stack writes one: `prometheusTargets`),
 * CASCADE_FARM_RANDOM_PORTS=1 (farm pools on free ports; the children get FARM_<POOL>_PORT, which
 * the config reads), CASCADE_TEMPORAL_EXTERNAL=1 (Temporal is a server or cluster already running at
 * temporal.address: start no dev server even when the config names one), and whatever `${VAR}` the
 * config uses (TEMPORAL_ADDRESS, CASCADE_TEMPORAL_DB).
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ApiFront } from './api-front.js';
import { DEFAULT_CONFIG_PATH, loadConfig, type CascadeConfig } from '../../config/load.js';
import { loadFarmConfig } from '../../farm/index.js';
import { freePort, startTemporalDevServer, type DevServer } from '../temporal-dev-server.js';
import { loadKeyring } from '../../common/encryption-keys.js';
import { metricsEnabled } from '../../common/metrics.js';
import { keyFilePath } from '../../workers/connection.js';
import type { Printer } from './log-lines.js';
import { describeOvercommit, overcommittedPools } from './pool-capacity.js';
import { portsInUse, type WantedPort } from './ports.js';
import { ensureSearchAttributes } from './search-attributes.js';
import { StartupError, Supervisor, type ChildSpec } from './supervisor.js';

/**
 * The environment of a stack of its own, beside any running `npm start` (benchmarks, tests): free
 * ports, its own Temporal history and keys file in `dir` (a keys file in the checkout would turn
 * authentication on), the farm on random ports.
 */
export async function isolatedStackEnv(dir: string): Promise<NodeJS.ProcessEnv> {
  return {
    PORT: String(await freePort()),
    TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
    CASCADE_UI_PORT: String(await freePort()),
    CASCADE_TEMPORAL_DB: join(dir, 'temporal.db'),
    CASCADE_KEYS_FILE: join(dir, 'api-keys.json'),
    CASCADE_FARM_RANDOM_PORTS: '1',
  };
}

export interface CascadeStackOptions {
  env?: NodeJS.ProcessEnv;
  print: Printer;
  /** Farm config to run instead of the one the Cascade config names (the benchmark's zero-latency farm). */
  farmConfigPath?: string;
  /** A process the stack cannot run without died after start-up (the Temporal dev server). */
  onFatal(reason: string): void;
  /**
   * Keep a Prometheus `file_sd_configs` file of every process's scrape URL up to date (rewritten
   * when a restarted worker reports a new port): this path, or CASCADE_PROMETHEUS_TARGETS when set.
   */
  prometheusTargets?: string;
  /** Extra environment of the i-th API process (1-based), e.g. a benchmark's CASCADE_METRICS=off on one of them. */
  apiEnv?: (i: number) => NodeJS.ProcessEnv;
}

interface Plan {
  config: CascadeConfig;
  apiPort: number;
  host: string;
  temporal: { port: number; uiPort: number; dbFile: string } | null;
  /** The Temporal UI's codec endpoint (served by the API process), when payloads are encrypted. */
  codecPort: number | null;
  farm: { configPath: string; randomPorts: boolean } | null;
}

export class CascadeStack {
  readonly supervisor: Supervisor;
  private readonly env: NodeJS.ProcessEnv;
  private devServer: Promise<DevServer> | null = null;
  private front: ApiFront | null = null;
  private temporalProcessId: number | null = null;
  private stopping: Promise<void> | null = null;
  private plan: Plan | null = null;
  /** Farm pool name → base URL (`http://127.0.0.1:<port>/v1`), once the farm is up. */
  readonly farmUrls = new Map<string, string>();
  /** Child name → its Prometheus scrape URL (the workers report theirs when ready; the API's is on its port). */
  readonly metricsUrls = new Map<string, string>();
  /** API process name (api#1, ...) → its own base URL behind the front (`http://host:port/v1`). */
  readonly apiUrls = new Map<string, string>();
  /** The Prometheus targets file this stack keeps up to date, when it keeps one. */
  readonly prometheusTargetsFile: string | null;

  constructor(private readonly opts: CascadeStackOptions) {
    this.env = { ...process.env, ...opts.env };
    this.supervisor = new Supervisor(opts.print);
    const targets = this.env.CASCADE_PROMETHEUS_TARGETS || opts.prometheusTargets;
    this.prometheusTargetsFile = targets ? resolve(targets) : null;
  }

  /** A child's scrape URL, and the targets file rewritten when it changed. */
  private setMetricsUrl(name: string, url: string): void {
    if (this.metricsUrls.get(name) === url) return;
    this.metricsUrls.set(name, url);
    if (this.prometheusTargetsFile) writePrometheusTargets(this.prometheusTargetsFile, this.metricsUrls);
  }

  get config(): CascadeConfig {
    if (!this.plan) throw new Error('the stack has not been planned yet');
    return this.plan.config;
  }

  get apiBase(): string {
    return `http://${this.plan!.host}:${this.plan!.apiPort}`;
  }

  /** The Temporal UI's URL, or null when Temporal is an external server. */
  get uiUrl(): string | null {
    return this.plan?.temporal ? `http://127.0.0.1:${this.plan.temporal.uiPort}` : null;
  }

  get codecUrl(): string | null {
    return this.plan?.codecPort ? `http://127.0.0.1:${this.plan.codecPort}` : null;
  }

  /** Pid of every process the stack runs, by name (the Temporal dev server as `temporal`). */
  pids(): Map<string, number> {
    const pids = this.supervisor.pids();
    if (this.temporalProcessId !== null) pids.set('temporal', this.temporalProcessId);
    return pids;
  }

  get stopped(): boolean {
    return this.stopping !== null;
  }

  /** Starts everything and resolves when the API answers /healthz; throws StartupError naming what failed. */
  async start(): Promise<void> {
    const say = (text: string) => this.opts.print('cascade', text);
    const p = (this.plan = await this.makePlan());
    const { config } = p;
    this.opts.print.widen([
      ...Object.entries(config.raw.pools).map(([pool, c]) => numbered(`pool:${pool}`, c.workers, c.workers)),
      numbered('router', config.raw.temporal.router_workers, config.raw.temporal.router_workers),
    ]);

    const wanted: WantedPort[] = [{ port: p.apiPort, what: this.env.PORT ? 'the API (PORT)' : 'the API (server.port)' }];
    if (p.codecPort) wanted.push({ port: p.codecPort, what: 'the codec endpoint (CASCADE_CODEC_PORT or encryption.codec_port)' });
    if (p.temporal) wanted.push({ port: p.temporal.port, what: 'Temporal (temporal.address)' }, { port: p.temporal.uiPort, what: 'the Temporal UI' });
    if (p.farm && !p.farm.randomPorts) {
      const farmConfig = await loadFarmConfig(p.farm.configPath, this.env);
      wanted.push(...Object.entries(farmConfig.pools).map(([name, pool]) => ({ port: pool.port, what: `farm pool ${name}` })));
    }
    const busy = await portsInUse(wanted, p.host);
    if (busy.length)
      throw new StartupError(
        `cannot start:\n  ${busy.join('\n  ')}\nStop what uses the port or choose another one (PORT, CASCADE_UI_PORT, CASCADE_CODEC_PORT, TEMPORAL_ADDRESS, CASCADE_FARM_RANDOM_PORTS=1, or the config).`,
      );

    if (config.raw.encryption.enabled) {
      // Before any child starts, so that all of them read the one key created here.
      const keys = loadKeyring({ file: keyFilePath(config), envVar: config.raw.encryption.keys_env, env: this.env });
      say(`payloads in Temporal are encrypted with key ${keys.keyring.current} (${keys.created ? 'new key written to ' : 'from '}${keys.source})`);
    }
    if (p.temporal) {
      say(`starting the Temporal dev server on 127.0.0.1:${p.temporal.port} (UI :${p.temporal.uiPort}, history in ${p.temporal.dbFile}) ...`);
      this.devServer = startTemporalDevServer({
        port: p.temporal.port,
        uiPort: p.temporal.uiPort,
        dbFile: p.temporal.dbFile,
        uiCodecEndpoint: this.codecUrl ?? undefined,
      });
      const server = await this.devServer.catch((err: Error) => {
        throw new StartupError(err.message);
      });
      server.process.once('exit', (code, signal) => {
        if (!this.stopped) this.opts.onFatal(`the Temporal dev server exited (${signal ?? `code ${code}`})`);
      });
      this.temporalProcessId = server.process.pid ?? null;
      say(`temporal pid ${server.process.pid} ready`);
    }
    this.checkNotStopped();
    const added = await ensureSearchAttributes(config.raw.temporal.address, config.raw.temporal.namespace).catch((err: Error) => {
      say(`could not check the search attributes (${err.message}); the Temporal UI may lack the Cascade columns`);
      return [];
    });
    if (added.length) say(`registered search attributes: ${added.join(', ')}`);

    const childEnv: NodeJS.ProcessEnv = { ...this.opts.env, CASCADE_CONFIG: config.file };
    if (p.farm) {
      const pid = await this.supervisor.start({
        name: 'farm',
        args: ['farm/main.ts', '--config', p.farm.configPath, ...(p.farm.randomPorts ? ['--random-ports'] : [])],
        env: this.opts.env,
        isReadyLine: (line) => line === 'farm ready',
        onLine: (line) => {
          const m = /^farm pool (\S+) ready (http:\/\/[^:]+:(\d+)\S*)/.exec(line);
          if (!m) return;
          this.farmUrls.set(m[1]!, m[2]!);
          // The config the children read points at the farm that is running (see cascade.yaml).
          childEnv[farmPortVar(m[1]!)] = m[3]!;
        },
        restart: false, // the workers' config holds its ports
      });
      say(`farm pid ${pid} ready`);
      await this.warnOvercommittedPools(p.farm.configPath, { ...this.env, ...childEnv });
    }
    this.checkNotStopped();

    const specs: ChildSpec[] = [];
    for (const [pool, poolConfig] of Object.entries(config.raw.pools)) {
      for (let i = 1; i <= poolConfig.workers; i++) {
        const name = numbered(`pool:${pool}`, i, poolConfig.workers);
        specs.push({ name, args: ['workers/pool.ts', pool], env: childEnv, isReadyLine: (line) => line.includes('"pool worker ready"'), restart: true });
      }
    }
    const routers = config.raw.temporal.router_workers;
    // Processes that run workflows: without the SDK's per-promise stack-trace hook, unless asked.
    const preload = config.raw.temporal.workflow_stack_traces ? [] : ['workers/workflow-threads.mjs'];
    for (let i = 1; i <= routers; i++) {
      const name = numbered('router', i, routers);
      specs.push({ name, args: ['workers/router.ts'], preload, env: childEnv, isReadyLine: (line) => line.includes('"router worker ready"'), restart: true });
    }
    // A worker (also a restarted one) reports where it serves /metrics in its ready line.
    for (const spec of specs)
      spec.onLine = (line) => {
        const m = /"metrics":"(http[^"]+)"/.exec(line);
        if (m) this.setMetricsUrl(spec.name, m[1]!);
      };
    const front = (this.front = new ApiFront(p.host));
    await front.listen(p.apiPort);
    const apis = config.raw.server.processes;
    for (let i = 1; i <= apis; i++) {
      const name = numbered('api', i, apis);
      // A free port of its own, announced in its ready line; the first one also serves the UI's codec endpoint.
      const env = { ...childEnv, PORT: '0', CASCADE_CODEC_PORT: String(i === 1 ? (p.codecPort ?? 0) : 0), ...this.opts.apiEnv?.(i) };
      const scraped = metricsEnabled({ ...this.env, ...env });
      specs.push({
        name,
        args: ['server/main.ts'],
        ...(config.raw.temporal.embedded_router && { preload }),
        env,
        isReadyLine: (line) => line.includes('"api ready"'),
        onLine: (line) => {
          const m = /"api ready".*"port":(\d+)|"port":(\d+).*"api ready"/.exec(line);
          if (!m) return;
          const port = Number(m[1] ?? m[2]);
          front.up(name, port);
          this.apiUrls.set(name, `http://${p.host}:${port}/v1`);
          // Each API process is scraped on its own port (the front would pick one at random).
          if (scraped) this.setMetricsUrl(name, `http://${p.host}:${port}/metrics`);
        },
        onExit: () => front.down(name),
        restart: true,
      });
    }
    await Promise.all(specs.map(async (spec) => say(`${spec.name} pid ${await this.supervisor.start(spec)} ready`)));
    await waitForHealth(`${this.apiBase}/healthz`, 15_000);
    this.checkNotStopped();
  }

  /** Stops every child (SIGTERM, SIGKILL after a grace period), then the Temporal dev server. Idempotent. */
  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      await this.front?.close();
      await this.supervisor.stopAll();
      await this.devServer?.then(
        (s) => s.stop(),
        () => {},
      );
    })());
  }

  /** A pool worker that takes more calls than its farm pool serves makes the demo slow: say so. */
  private async warnOvercommittedPools(farmConfigPath: string, env: NodeJS.ProcessEnv): Promise<void> {
    const farmConfig = await loadFarmConfig(farmConfigPath, env);
    const serving = Object.entries(farmConfig.pools).map(([name, pool]) => ({ name, concurrency: pool.concurrency, baseUrl: this.farmUrls.get(name) ?? '' }));
    // Loaded again with the farm's ports, as the workers will load it.
    const config = loadConfig(this.config.file, env);
    for (const o of overcommittedPools(config, serving)) this.opts.print('cascade', describeOvercommit(o));
  }

  private checkNotStopped(): void {
    if (this.stopped) throw new StartupError('stopped during start-up');
  }

  private async makePlan(): Promise<Plan> {
    const env = this.env;
    const config = loadConfig(env.CASCADE_CONFIG ?? DEFAULT_CONFIG_PATH, env);
    const apiPort = env.PORT ? parsePort(env.PORT, 'PORT') : config.raw.server.port;
    const dev = env.CASCADE_TEMPORAL_EXTERNAL === '1' ? undefined : config.raw.temporal.dev_server;
    let temporal: Plan['temporal'] = null;
    if (dev) {
      const match = /^(127\.0\.0\.1|localhost):(\d+)$/.exec(config.raw.temporal.address);
      if (!match) throw new StartupError(`temporal.dev_server is set, so temporal.address must be 127.0.0.1:<port> (it is ${config.raw.temporal.address})`);
      temporal = {
        port: parsePort(match[2]!, 'temporal.address'),
        uiPort: env.CASCADE_UI_PORT ? parsePort(env.CASCADE_UI_PORT, 'CASCADE_UI_PORT') : dev.ui_port,
        dbFile: resolve(dirname(config.file), dev.db_file),
      };
    }
    const farmConfigPath = this.opts.farmConfigPath ?? config.farmConfigPath;
    const farm = farmConfigPath ? { configPath: farmConfigPath, randomPorts: env.CASCADE_FARM_RANDOM_PORTS === '1' } : null;
    const { enabled, codec_port } = config.raw.encryption;
    const codecPort = env.CASCADE_CODEC_PORT ? parsePort(env.CASCADE_CODEC_PORT, 'CASCADE_CODEC_PORT') : codec_port;
    return { config, apiPort, host: config.raw.server.host, temporal, codecPort: enabled && codecPort > 0 ? codecPort : null, farm };
  }
}

function parsePort(value: string, what: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new StartupError(`${what}: "${value}" is not a port number`);
  return port;
}

/** `router`, or `router#2` when there are several. */
const numbered = (name: string, i: number, of: number) => (of > 1 ? `${name}#${i}` : name);

/** The env var the config reads a farm pool's port from: gpu-a → FARM_GPU_A_PORT. */
const farmPortVar = (pool: string) => `FARM_${pool.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_PORT`;

async function waitForHealth(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
      if (res.ok) return;
      last = `HTTP ${res.status}: ${await res.text()}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new StartupError(`api did not answer ${url} with 200 within ${timeoutMs / 1000} s (${last})`);
}

/**
 * Prometheus's file-based service discovery format: one target group per process, labelled
 * `cascade_process` (api#1, pool:cpu, router#2, ...). Written to a temporary file and renamed, so
 * Prometheus never reads half a file; it re-reads the file when it changes.
 */
export function writePrometheusTargets(path: string, urls: ReadonlyMap<string, string>): void {
  const groups = [...urls].map(([name, url]) => {
    const u = new URL(url);
    return { targets: [u.host], labels: { cascade_process: name, __metrics_path__: u.pathname } };
  });
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(groups, null, 2)}\n`);
  renameSync(tmp, path);
}
