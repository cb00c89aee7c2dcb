/**
 * The hashed API keys file (`npm run keys`, config `keys.file`): one entry per key with its
 * SHA-256 digest — never the key itself —, its tier and optional limits of its own. Shared by the
 * API (server/keys.ts) and the command-line tool (scripts/keys.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { keyLimitsSchema } from '../config/schema.js';

export const keyEntrySchema = z
  .object({
    id: z.string().regex(/^key_[0-9a-f]{12}$/),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    name: z.string().min(1).max(200),
    tier: z.string().min(1),
    /** This key's own limits, over its tier's (budget and rate limit fields replace the tier's one by one). */
    limits: keyLimitsSchema.optional(),
    created_at: z.string(),
    revoked_at: z.string().nullable().default(null),
  })
  .strict();
export const keysFileSchema = z.object({ keys: z.array(keyEntrySchema) }).strict();

export type KeyEntry = z.infer<typeof keyEntrySchema>;
export type KeysFile = z.infer<typeof keysFileSchema>;

export const sha256Hex = (key: string): string => createHash('sha256').update(key).digest('hex');
/** How usage, traces and budgets name a key: a prefix of its SHA-256, never the key itself. */
export const keyIdOf = (sha256: string): string => `key_${sha256.slice(0, 12)}`;
/** A new key: 32 random bytes, printed once and stored only as its digest. */
export const generateKey = (): string => `csk-${randomBytes(32).toString('base64url')}`;

/** The file's entries; an empty list when it does not exist. Throws naming the bad field. */
export function readKeysFile(path: string): KeysFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { keys: [] };
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`keys file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = keysFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`invalid keys file ${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** Written whole to a temporary file and renamed, so a reader never sees half a file. */
export function writeKeysFile(path: string, file: KeysFile): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}
