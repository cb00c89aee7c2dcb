/**
 * The stack the live latency bench runs: the production process layout (scripts/lib/stack.ts:
 * Temporal dev server, farm, one process per pool worker, router worker, API) with the real
 * config/cascade.yaml (its models, policies and presets) and the farm of config/farm.yaml with its
 * realistic timings, every time to first token and generation speed scaled by `timeScale`.
 *
 * The config's knobs that stand for how long a call takes are scaled by the same factor (a copy
 * of config/cascade.yaml in a temp dir): each model's latency_ms prior and each step's
 * hedge.after_ms. Decisions then fall at the same point of an answer as at scale 1 (a hedge after
 * 4 s of a 15 tok/s stream is a hedge after 1 s of a 60 tok/s one). Deadlines and timeouts stay as
 * configured: the router's own time does not scale, so a scaled deadline would cut answers that fit
 * at full speed. Policies of policy_files are read unchanged.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { DEFAULT_CONFIG_PATH, REPO_ROOT } from '../../config/load.js';
import { DEFAULT_FARM_CONFIG, type Attempt } from '../../farm/index.js';
import { createPrinter } from '../../scripts/lib/log-lines.js';
import { CascadeStack, isolatedStackEnv } from '../../scripts/lib/stack.js';

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
    models?: Record<string, { gguf?: string }>;
    pools: Record<string, { models: Record<string, PoolTiming | null> }>;
  };
  raw.data_root = resolve(dirname(DEFAULT_FARM_CONFIG), raw.data_root);
  // The local model's file, `${CASCADE_LOCAL_GGUF:-../.data/models/…}`: its default is relative to config/.
  for (const m of Object.values(raw.models ?? {}))
    if (m.gguf)
      m.gguf = m.gguf.replace(
        /^(\$\{[A-Z0-9_]+:-)?([^}]+)(\}?)$/,
        (_, pre = '', path: string, post: string) => `${pre}${resolve(dirname(DEFAULT_FARM_CONFIG), path)}${post}`,
      );
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

interface RawCascade {
  policy_files?: string[];
  encryption?: Record<string, unknown>;
  farm?: { config: string };
  models: Record<string, { latency_ms?: { p50: number; p99: number } }>;
  policies: Record<string, { steps: { hedge?: { after_ms?: number } }[] }>;
}

/** Writes config/cascade.yaml with its latency knobs × scale (see the top of this file) to `dir`. */
export function writeScaledConfig(dir: string, scale: number): string {
  const raw = parse(readFileSync(DEFAULT_CONFIG_PATH, 'utf8')) as RawCascade;
  const scaled = (ms: number) => Math.max(1, Math.round(ms * scale));
  const base = dirname(DEFAULT_CONFIG_PATH);
  raw.policy_files = raw.policy_files?.map((f) => resolve(base, f));
  // Its own payload keys beside the copy (a relative default would land next to the temp dir).
  raw.encryption = { ...raw.encryption, key_file: join(dir, 'encryption-keys') };
  if (raw.farm) raw.farm.config = resolve(base, raw.farm.config);
  for (const m of Object.values(raw.models)) if (m.latency_ms) m.latency_ms = { p50: scaled(m.latency_ms.p50), p99: scaled(m.latency_ms.p99) };
  for (const policy of Object.values(raw.policies)) {
    for (const step of policy.steps) if (step.hedge?.after_ms) step.hedge.after_ms = scaled(step.hedge.after_ms);
  }
  const path = join(dir, 'cascade.latency.yaml');
  writeFileSync(path, stringify(raw));
  return path;
}

export async function startLatencyStack(opts: { timeScale: number; verbose: boolean; log: (s: string) => void }): Promise<LatencyStack> {
  // The real farm's cheap tier needs the local model that `npm start` fetches; fetch it if not there yet.
  const fetched = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts/bootstrap.mjs'), 'local-model'], { stdio: 'inherit' });
  if (fetched.status !== 0) throw new Error('could not fetch the local model (scripts/bootstrap.mjs local-model, see above)');
  const dir = mkdtempSync(join(tmpdir(), 'cascade-latency-'));
  const farm = writeScaledFarm(dir, opts.timeScale);
  const print = createPrinter((s) => {
    if (opts.verbose || s.startsWith('cascade ')) process.stderr.write(s);
  });
  const stack = new CascadeStack({
    env: {
      CASCADE_CONFIG: writeScaledConfig(dir, opts.timeScale),
      ...(await isolatedStackEnv(dir)),
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
