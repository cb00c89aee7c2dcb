/**
 * The stack config a benchmark runs: config/cascade.yaml with the pools' concurrency raised so
 * that no pool's configured capacity (cpu: 2, sized for the realistic farm) is what a benchmark of
 * the request path measures, and optionally every pool's dispatch mode set. Written into the
 * benchmark's own directory; the paths the default config gives relative to config/ stay where
 * they were, except the encryption key and the document store, which are the run's own.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { DEFAULT_CONFIG_PATH } from '../../config/load.js';

export type Dispatch = 'task-queue' | 'local';

export function parseDispatch(value: string | undefined, option: string): Dispatch | undefined {
  if (value === undefined || value === 'task-queue' || value === 'local') return value;
  throw new Error(`${option}: "${value}" is not a dispatch mode (task-queue or local)`);
}

export function writeBenchConfig(dir: string, opts: { dispatch?: Dispatch; minConcurrency?: number } = {}): string {
  const raw = parse(readFileSync(DEFAULT_CONFIG_PATH, 'utf8')) as Record<string, any>;
  const configDir = dirname(DEFAULT_CONFIG_PATH);
  for (const pool of Object.values(raw.pools ?? {}) as Record<string, unknown>[]) {
    pool.concurrency = Math.max(Number(pool.concurrency ?? 0), opts.minConcurrency ?? 64);
    if (opts.dispatch) pool.dispatch = opts.dispatch;
  }
  // Tail hedges need timers, which cannot fire while a local call holds the workflow task: the
  // config refuses them with local dispatch, so a local run drops them (no benchmark uses them).
  if (opts.dispatch === 'local')
    for (const policy of Object.values(raw.policies ?? {}) as { steps?: { hedge?: { after_ms?: number } }[] }[])
      for (const step of policy.steps ?? []) if (step.hedge?.after_ms !== undefined) delete step.hedge;
  raw.policy_files = ((raw.policy_files ?? []) as string[]).map((f) => resolve(configDir, f));
  raw.encryption = { ...raw.encryption, key_file: join(dir, 'encryption-keys') };
  raw.documents = { ...raw.documents, store_dir: join(dir, 'documents') };
  const file = join(dir, 'cascade.yaml');
  writeFileSync(file, stringify(raw));
  return file;
}
