import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The `.jsonl` datasets in a folder (name = file name without `.jsonl`), sorted, optionally only those whose name contains `only`. */
export function datasetFiles(dir: string, only?: string): { data: string; name: string }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl') && (!only || f.includes(only)))
    .sort()
    .map((f) => ({ data: join(dir, f), name: f.replace(/\.jsonl$/, '') }));
}
