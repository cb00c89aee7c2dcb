/**
 * Where the encryption keys come from: an environment variable, or a key file that is generated
 * on first start (`.data/encryption-keys`, mode 0600, outside git). Both hold entries
 * `<key id>:<base64 of 32 bytes>`, separated by newlines or commas; the first entry seals new
 * payloads, the others only open old ones. To rotate, put a new entry first and keep the old.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Keyring } from './codec.js';

export class KeyringError extends Error {
  override name = 'KeyringError';
}

/** Parses key entries; errors name the source and the entry, never key material. */
export function parseKeyring(text: string, source: string): Keyring {
  const entries = text
    .split(/[\n,]/)
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter(Boolean);
  if (entries.length === 0) throw new KeyringError(`${source}: no encryption key (expected "<key id>:<base64 of 32 bytes>")`);
  const keys = new Map<string, Buffer>();
  entries.forEach((entry, i) => {
    const m = /^([A-Za-z0-9._-]{1,64}):([A-Za-z0-9+/=]+)$/.exec(entry);
    if (!m) throw new KeyringError(`${source}: entry ${i + 1} is not "<key id>:<base64 key>"`);
    const key = Buffer.from(m[2]!, 'base64');
    if (key.length !== 32) throw new KeyringError(`${source}: key "${m[1]}" is ${key.length} bytes, AES-256 needs 32`);
    if (keys.has(m[1]!)) throw new KeyringError(`${source}: key id "${m[1]}" appears twice`);
    keys.set(m[1]!, key);
  });
  return { current: [...keys.keys()][0]!, keys };
}

export function newKeyEntry(now = new Date()): string {
  return `k${now.toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(3).toString('hex')}:${randomBytes(32).toString('base64')}`;
}

/**
 * The key file's keyring, creating the file when it does not exist. Processes that start at the
 * same time agree on one key: the new file is written aside and linked into place, which fails
 * for all but the first; the others then read the winner's file.
 */
export function loadOrCreateKeyFile(file: string): { keyring: Keyring; created: boolean } {
  let created = false;
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
    writeFileSync(aside, `# Cascade payload encryption keys: the first seals new payloads. Keep this file secret.\n${newKeyEntry()}\n`, { mode: 0o600 });
    try {
      linkSync(aside, file);
      created = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      rmSync(aside, { force: true });
    }
  }
  return { keyring: parseKeyring(readFileSync(file, 'utf8'), file), created };
}

/** The environment variable's keys when it is set, else the key file's (created if missing). */
export function loadKeyring(opts: { file: string; envVar: string; env: NodeJS.ProcessEnv }): { keyring: Keyring; source: string; created: boolean } {
  const fromEnv = opts.env[opts.envVar]?.trim();
  if (fromEnv) return { keyring: parseKeyring(fromEnv, opts.envVar), source: opts.envVar, created: false };
  return { ...loadOrCreateKeyFile(opts.file), source: opts.file };
}
