/**
 * The model farm's programmatic API: load a config, start every pool on 127.0.0.1, close.
 * Used by `npm run farm` (farm/main.ts), `npm start` and the router's tests.
 */
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { REPO_ROOT } from '../common/paths.js';
import { AttemptLog } from './attempt-log.js';
import { createBackends } from './backends/index.js';
import { contextWindowOf, FarmConfigError, type FarmConfig } from './config.js';
import type { FarmState } from './control.js';
import { FaultState } from './faults.js';
import { createPoolApp, type Fallback, type PoolModel } from './pool.js';

export { defineFarmConfig, FarmConfigError, loadFarmConfig, parseFarmConfig, type FarmConfig, type FarmConfigInput, type FaultRule } from './config.js';
export { FAULT_DELAY_HEADER, FAULT_HEADER, FAULT_NAMES, type FaultName } from './faults.js';
export { OUTPUT_TOKENS_HEADER, REPLAY_ID_HEADER, REPLAY_SOURCE_HEADER, SIMULATED_HEADER } from './pool.js';
export { SIMULATED_PREFIX } from './backends/synthetic.js';
export type { Attempt, AttemptOutcome } from './attempt-log.js';

/** config/farm.yaml: the default layout (cpu, gpu-a, api on 9101-9103) that `npm run farm` starts. */
export const DEFAULT_FARM_CONFIG = join(REPO_ROOT, 'config', 'farm.yaml');
/** config/farm.test.yaml: the same layout with zero latency and short fault timings, for tests. */
export const TEST_FARM_CONFIG = join(REPO_ROOT, 'config', 'farm.test.yaml');

export interface RunningPool {
  name: string;
  port: number;
  /** http://127.0.0.1:<port>/v1 — what an OpenAI client takes as its base URL. */
  baseUrl: string;
}

export interface RunningFarm {
  pools: RunningPool[];
  close(): Promise<void>;
}

export interface StartFarmOptions {
  /** 0 = a random free port for every pool; n > 0 = consecutive ports n, n+1, … in config order. */
  portOverride?: number;
  logger?: Logger;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Hung requests (no-response, stalls) and keep-alive sockets must not hold the close.
    server.closeAllConnections();
  });
}

export async function startFarm(config: FarmConfig, opts: StartFarmOptions = {}): Promise<RunningFarm> {
  const logger = opts.logger ?? pino({ name: 'farm' }, pino.destination(2));
  const started = Date.now();
  const backends = await createBackends(config);
  const state: FarmState = {
    log: new AttemptLog(config.attempt_log_limit),
    faults: new FaultState(config.faults, config.fault_settings.flap_seconds, {
      pools: new Set(Object.keys(config.pools)),
      models: new Set(Object.keys(config.models)),
    }),
    pools: new Map(),
  };

  const servers: Server[] = [];
  const pools: RunningPool[] = [];
  const close = async () => {
    await Promise.all(servers.map(closeServer));
    await backends.close();
  };
  try {
    for (const [i, [name, pool]] of Object.entries(config.pools).entries()) {
      const models = new Map<string, PoolModel>();
      /** Synthetic models answer everything themselves; a model never falls back to itself. */
      const fallbackFor = (fallback: string | null, model: string, backend: string): Fallback | null => {
        if (fallback === null || backend === 'synthetic') return null;
        if (fallback === 'synthetic') return { backend: backends.synthetic, model: null };
        return model === fallback ? null : { backend: backends.primary.get(fallback)!, model: fallback };
      };
      for (const [modelName, latency] of Object.entries(pool.models)) {
        const modelConfig = config.models[modelName]!;
        models.set(modelName, {
          name: modelName,
          contextWindow: contextWindowOf(modelConfig),
          latency,
          backend: backends.primary.get(modelName)!,
          fallback: fallbackFor(pool.fallback, modelName, modelConfig.backend),
        });
      }
      const app = createPoolApp({
        name,
        models,
        concurrency: pool.concurrency,
        maxBodyBytes: config.max_body_bytes,
        faultSettings: config.fault_settings,
        state,
        logger: logger.child({ pool: name }),
      });
      const server = createServer(app);
      servers.push(server);
      const wanted = opts.portOverride === undefined ? pool.port : opts.portOverride === 0 ? 0 : opts.portOverride + i;
      let port: number;
      try {
        port = await listen(server, wanted, config.host);
      } catch (err) {
        servers.pop();
        throw new FarmConfigError(
          `${config.source}: pools.${name}.port: cannot listen on ${config.host}:${wanted} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        );
      }
      pools.push({ name, port, baseUrl: `http://${config.host}:${port}/v1` });
    }
  } catch (err) {
    await close();
    throw err;
  }
  logger.info({ pools: pools.map((p) => p.name), replay_prompts: backends.replayPrompts, ms: Date.now() - started }, 'farm started');
  return { pools, close };
}
