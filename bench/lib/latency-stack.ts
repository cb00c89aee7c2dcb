/**
 * The stack the live latency bench runs: the production process layout (scripts/lib/stack.ts:
 * Temporal dev server, farm, one process per pool worker, router worker, API) with the real
 * config/cascade.yaml (its models, policies and presets) and the farm of config/farm.yaml with its
 * realistic timings, every time to first token and generation speed scaled by `timeScale`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { DEFAULT_FARM_CONFIG, type Attempt } from '../../farm/index.js';
import { createPrinter } from '../../scripts/lib/log-lines.js';
import { CascadeStack } from '../../scripts/lib/stack.js';
import { freePort } from '../../scripts/temporal-dev-server.js';

export interface PoolTiming {
  ttft_ms: number;
  tokens_per_s: number;
}

export interface LatencyStack {
  apiUrl: string;
  /** Farm pool → model → its timing after scaling (what the farm was told). */
  timings: Record<string, Record<string, PoolTiming>>;
  farmLog(): Promise<Attempt[]>;
  farmReset(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Writes config/farm.yaml with every ttft_ms × scale and tokens_per_s ÷ scale (0.25: four times
 * faster) to `dir`; the data root becomes absolute since the copy lives elsewhere.
 */
export function writeScaledFarm(dir: string, scale: number): { path: string; timings: LatencyStack['timings'] } {
  const raw = parse(readFileSync(DEFAULT_FARM_CONFIG, 'utf8')) as {
    data_root: string;
    pools: Record<string, { models: Record<string, PoolTiming | null> }>;
  };
  raw.data_root = resolve(dirname(DEFAULT_FARM_CONFIG), raw.data_root);
  const timings: LatencyStack['timings'] = {};
  for (const [pool, p] of Object.entries(raw.pools)) {
    timings[pool] = {};
    for (const [model, t] of Object.entries(p.models)) {
      if (!t) continue;
      t.ttft_ms = t.ttft_ms * scale;
      t.tokens_per_s = t.tokens_per_s / scale;
      timings[pool][model] = { ttft_ms: t.ttft_ms, tokens_per_s: t.tokens_per_s };
    }
  }
  const path = join(dir, 'farm.latency.yaml');
  writeFileSync(path, stringify(raw));
  return { path, timings };
}

export async function startLatencyStack(opts: { timeScale: number; verbose: boolean; log: (s: string) => void }): Promise<LatencyStack> {
  const dir = mkdtempSync(join(tmpdir(), 'cascade-latency-'));
  const farm = writeScaledFarm(dir, opts.timeScale);
  const print = createPrinter((s) => {
    if (opts.verbose || s.startsWith('cascade ')) process.stderr.write(s);
  });
  const stack = new CascadeStack({
    env: {
      PORT: String(await freePort()),
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      CASCADE_UI_PORT: String(await freePort()),
      CASCADE_TEMPORAL_DB: join(dir, 'temporal.db'),
      CASCADE_FARM_RANDOM_PORTS: '1',
    },
    print,
    farmConfigPath: farm.path,
    onFatal: (reason) => {
      opts.log(reason);
      process.exit(1);
    },
  });
  const stop = async () => {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await stack.start();
  } catch (err) {
    await stop();
    throw err;
  }
  // Every farm pool port also serves the control routes (/farm/log, /farm/reset).
  const control = [...stack.farmUrls.values()][0]!.replace(/\/v1$/, '');
  return {
    apiUrl: `${stack.apiBase}/v1`,
    timings: farm.timings,
    async farmLog() {
      const res = await fetch(`${control}/farm/log`);
      return ((await res.json()) as { attempts: Attempt[] }).attempts;
    },
    async farmReset() {
      await fetch(`${control}/farm/reset`, { method: 'POST' });
    },
    stop,
  };
}
