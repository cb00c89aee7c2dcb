/**
 * Where document texts, chunk inputs and results live: outside the workflow history, which must
 * stay small. A port with a filesystem adapter (the default); an object store (S3, GCS, …)
 * implements the same three calls. The API writes the document and reads results, the router
 * worker's document activities do the rest, so with the filesystem adapter they share its
 * directory (one machine, or a shared volume).
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { CascadeConfig } from '../config/load.js';

export interface DocumentStore {
  put(key: string, data: string): Promise<void>;
  /** null when the key does not exist. */
  get(key: string): Promise<string | null>;
  /** Removes every key under the prefix. */
  removePrefix(prefix: string): Promise<void>;
}

/** Keys are `/`-separated paths of safe segments; never absolute, never `..`. */
function checkKey(key: string): string {
  if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(key) || key.split('/').some((s) => s === '..' || s === '.'))
    throw new Error(`invalid store key ${JSON.stringify(key)}`);
  return key;
}

export class FileDocumentStore implements DocumentStore {
  constructor(readonly root: string) {}

  async put(key: string, data: string): Promise<void> {
    const path = join(this.root, checkKey(key));
    await mkdir(dirname(path), { recursive: true });
    // Write then rename: a reader never sees half a file, and a retried activity simply overwrites.
    const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, data);
    await rename(tmp, path);
  }

  async get(key: string): Promise<string | null> {
    try {
      return await readFile(join(this.root, checkKey(key)), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async removePrefix(prefix: string): Promise<void> {
    await rm(join(this.root, checkKey(prefix)), { recursive: true, force: true });
  }
}

/** The configured store: `documents.store_dir`, relative to the config file. */
export function createDocumentStore(config: CascadeConfig): DocumentStore {
  const dir = config.raw.documents.store_dir;
  return new FileDocumentStore(isAbsolute(dir) ? dir : resolve(dirname(config.file), dir));
}
