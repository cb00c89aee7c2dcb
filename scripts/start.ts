/**
 * `npm start`: the whole stack on 127.0.0.1 — a Temporal dev server with a persistence file, the
 * model farm, one worker process per pool (times `pools.<name>.workers`), the router worker and
 * the API — then the ready line and a curl that works. Ctrl-C (or SIGTERM) stops everything.
 *
 * Environment: CASCADE_CONFIG (config file), PORT (API port), CASCADE_UI_PORT (Temporal UI port),
 * CASCADE_FARM_RANDOM_PORTS=1 (farm pools on free ports; the children get FARM_<POOL>_PORT), and
 * whatever `${VAR}` the config uses (e.g. TEMPORAL_ADDRESS, CASCADE_TEMPORAL_DB).
 */
import { dirname, resolve } from 'node:path';
import { loadConfig, type CascadeConfig } from '../config/load.js';
import { loadFarmConfig } from '../farm/index.js';
import { startTemporalDevServer, type DevServer } from './temporal-dev-server.js';
import { createPrinter } from './lib/log-lines.js';
import { portsInUse, type WantedPort } from './lib/ports.js';
import { ensureSearchAttributes } from './lib/search-attributes.js';
import { StartupError, Supervisor, type ChildSpec } from './lib/supervisor.js';

/** gsm8k-test-0 from the farm's replay data: the sample request gets a real recorded answer. */
const SAMPLE_PROMPT =
  "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?";

const print = createPrinter();
const say = (text: string) => print('cascade', text);

interface Plan {
  config: CascadeConfig;
  apiPort: number;
  host: string;
  temporal: { port: number; uiPort: number; dbFile: string } | null;
  farm: { configPath: string; randomPorts: boolean; ports: WantedPort[] } | null;
}

async function plan(env: NodeJS.ProcessEnv): Promise<Plan> {
  const config = loadConfig();
  const apiPort = env.PORT ? parsePort(env.PORT, 'PORT') : config.raw.server.port;
  const dev = config.raw.temporal.dev_server;
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
  let farm: Plan['farm'] = null;
  if (config.farmConfigPath) {
    const randomPorts = env.CASCADE_FARM_RANDOM_PORTS === '1';
    const farmConfig = await loadFarmConfig(config.farmConfigPath);
    const ports = randomPorts ? [] : Object.entries(farmConfig.pools).map(([name, p]) => ({ port: p.port, what: `farm pool ${name}` }));
    farm = { configPath: config.farmConfigPath, randomPorts, ports };
  }
  return { config, apiPort, host: config.raw.server.host, temporal, farm };
}

function parsePort(value: string, what: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new StartupError(`${what}: "${value}" is not a port number`);
  return port;
}

/** The env var the config reads a farm pool's port from: gpu-a → FARM_GPU_A_PORT. */
const farmPortVar = (pool: string) => `FARM_${pool.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_PORT`;

function sampleCurl(apiBase: string, apiKeysEnv: string | undefined, env: NodeJS.ProcessEnv): string {
  const body = JSON.stringify({ model: 'cascade', messages: [{ role: 'user', content: SAMPLE_PROMPT }] }).replace(/'/g, '\\u0027'); // no quote to escape in the shell
  // The key stays out of the output: the shell takes the first one from the variable.
  const auth = apiKeysEnv && env[apiKeysEnv]?.trim() ? ` -H "Authorization: Bearer \${${apiKeysEnv}%%,*}"` : '';
  return `curl -s ${apiBase}/chat/completions -H 'Content-Type: application/json'${auth} -d '${body}'`;
}

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

async function main(): Promise<number> {
  const env = process.env;
  const supervisor = new Supervisor(print);
  let devServer: Promise<DevServer> | null = null;
  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      await supervisor.stopAll();
      await devServer?.then((s) => s.stop(), () => {});
    })());
  let exitCode = 0;
  let finished!: () => void;
  const done = new Promise<void>((r) => (finished = r));
  const shutdown = (reason: string, code: number) => {
    if (stopping) return;
    exitCode = code;
    say(reason);
    void stop().then(finished);
  };
  process.on('SIGINT', () => shutdown('stopping (SIGINT) ...', 0));
  process.on('SIGTERM', () => shutdown('stopping (SIGTERM) ...', 0));
  process.on('exit', () => supervisor.killAllNow());

  try {
    const p = await plan(env);
    const { config } = p;
    print.widen(Object.entries(config.raw.pools).map(([pool, c]) => (c.workers > 1 ? `pool:${pool}#${c.workers}` : `pool:${pool}`)));
    const wanted: WantedPort[] = [{ port: p.apiPort, what: env.PORT ? 'the API (PORT)' : 'the API (server.port)' }];
    if (p.temporal) wanted.push({ port: p.temporal.port, what: 'Temporal (temporal.address)' }, { port: p.temporal.uiPort, what: 'the Temporal UI' });
    if (p.farm) wanted.push(...p.farm.ports);
    const busy = await portsInUse(wanted, p.host);
    if (busy.length) throw new StartupError(`cannot start:\n  ${busy.join('\n  ')}\nStop what uses the port or choose another one (PORT, CASCADE_UI_PORT, TEMPORAL_ADDRESS, or the config).`);

    const namespace = config.raw.temporal.namespace;
    if (p.temporal) {
      say(`starting the Temporal dev server on 127.0.0.1:${p.temporal.port} (UI :${p.temporal.uiPort}, history in ${p.temporal.dbFile}) ...`);
      devServer = startTemporalDevServer({ port: p.temporal.port, uiPort: p.temporal.uiPort, dbFile: p.temporal.dbFile });
      const server = await devServer;
      server.process.once('exit', (code, signal) => shutdown(`the Temporal dev server exited (${signal ?? `code ${code}`}); stopping everything`, 1));
      say(`temporal pid ${server.process.pid} ready`);
    }
    if (stopping) return done.then(() => exitCode);
    const added = await ensureSearchAttributes(config.raw.temporal.address, namespace).catch((err: Error) => {
      say(`could not check the search attributes (${err.message}); the Temporal UI may lack the Cascade columns`);
      return [];
    });
    if (added.length) say(`registered search attributes: ${added.join(', ')}`);

    const childEnv: NodeJS.ProcessEnv = { CASCADE_CONFIG: config.file };
    if (p.farm) {
      const farmPorts: Record<string, string> = {};
      const pid = await supervisor.start({
        name: 'farm',
        args: ['farm/main.ts', '--config', p.farm.configPath, ...(p.farm.randomPorts ? ['--random-ports'] : [])],
        isReadyLine: (line) => line === 'farm ready',
        onLine: (line) => {
          const m = /^farm pool (\S+) ready http:\/\/[^:]+:(\d+)/.exec(line);
          if (m) farmPorts[farmPortVar(m[1]!)] = m[2]!;
        },
        restart: false, // the workers' config holds its ports
      });
      say(`farm pid ${pid} ready`);
      // The config the children read points at the farm that is running (see cascade.yaml).
      Object.assign(childEnv, farmPorts);
    }
    if (stopping) return done.then(() => exitCode);

    const specs: ChildSpec[] = [];
    for (const [pool, poolConfig] of Object.entries(config.raw.pools)) {
      for (let i = 1; i <= poolConfig.workers; i++) {
        specs.push({
          name: poolConfig.workers > 1 ? `pool:${pool}#${i}` : `pool:${pool}`,
          args: ['workers/pool.ts', pool],
          env: childEnv,
          isReadyLine: (line) => line.includes('"pool worker ready"'),
          restart: true,
        });
      }
    }
    specs.push({ name: 'router', args: ['workers/router.ts'], env: childEnv, isReadyLine: (line) => line.includes('"router worker ready"'), restart: true });
    specs.push({ name: 'api', args: ['server/main.ts'], env: { ...childEnv, PORT: String(p.apiPort) }, isReadyLine: (line) => line.includes('"api ready"'), restart: true });
    await Promise.all(specs.map(async (spec) => say(`${spec.name} pid ${await supervisor.start(spec)} ready`)));

    const apiBase = `http://${p.host}:${p.apiPort}`;
    await waitForHealth(`${apiBase}/healthz`, 15_000);
    if (stopping) return done.then(() => exitCode);
    const where = p.temporal ? `Temporal UI: http://127.0.0.1:${p.temporal.uiPort}` : `Temporal: ${config.raw.temporal.address}`;
    say(`Cascade ready: ${apiBase}/v1 (${where})`);
    say('Try it:');
    process.stdout.write(`${sampleCurl(`${apiBase}/v1`, config.raw.server.api_keys_env, env)}\n`);
  } catch (err) {
    const message = err instanceof StartupError || (err as Error).name === 'ConfigError' || (err as Error).name === 'FarmConfigError' ? (err as Error).message : String((err as Error).stack ?? err);
    if (!stopping) shutdown(`start-up failed: ${message}\nstopping everything that was started ...`, 1);
  }
  await done;
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`[start] ${err instanceof Error ? err.stack : String(err)}`);
    process.exit(1);
  },
);
