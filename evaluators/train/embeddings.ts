/**
 * Batch embedding with an on-disk cache under .data/embeddings/, keyed by the dataset file's hash
 * and the encoder settings, so re-training (and calibration) never re-embeds the same texts.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Encoder } from '../encoder/encoder.js';
import { REPO_ROOT } from '../head.js';

const textKey = (t: string) => createHash('sha1').update(t).digest('hex');

export async function fileHash(path: string): Promise<string> {
  return createHash('sha1')
    .update(await readFile(path))
    .digest('hex');
}

export async function embedAllCached(
  encoder: Encoder,
  texts: string[],
  cacheId: string,
  onProgress?: (done: number, total: number) => void,
): Promise<Map<string, Float32Array>> {
  const dir = join(REPO_ROOT, '.data/embeddings');
  const base = join(dir, cacheId);
  const out = new Map<string, Float32Array>();
  if (existsSync(`${base}.json`) && existsSync(`${base}.bin`)) {
    const keys = JSON.parse(await readFile(`${base}.json`, 'utf8')) as string[];
    const buf = await readFile(`${base}.bin`);
    const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    keys.forEach((k, i) => out.set(k, all.slice(i * encoder.dim, (i + 1) * encoder.dim)));
  }
  const unique = [...new Set(texts)];
  const byKey = new Map(unique.map((t) => [textKey(t), t]));
  const missing = [...byKey.entries()].filter(([k]) => !out.has(k));
  // One text per run, as at serving time: the quantised encoder scales activations per batch, so a
  // text embedded inside a batch differs (by up to ~0.02) from the same text embedded alone.
  const BATCH = 1;
  for (let i = 0; i < missing.length; i += BATCH) {
    const batch = missing.slice(i, i + BATCH);
    const vecs = await encoder.embed(batch.map(([, t]) => t));
    batch.forEach(([k], j) => out.set(k, vecs[j]!));
    onProgress?.(Math.min(i + BATCH, missing.length), missing.length);
  }
  if (missing.length) {
    await mkdir(dir, { recursive: true });
    const keys = [...out.keys()];
    const all = new Float32Array(keys.length * encoder.dim);
    keys.forEach((k, i) => all.set(out.get(k)!, i * encoder.dim));
    await writeFile(`${base}.bin`, new Uint8Array(all.buffer));
    await writeFile(`${base}.json`, JSON.stringify(keys));
  }
  const result = new Map<string, Float32Array>();
  for (const t of unique) result.set(t, out.get(textKey(t))!);
  return result;
}
