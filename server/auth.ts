/**
 * Bearer-key authentication. Keys come from the env var the config names (comma-separated);
 * when none is configured the API is open, which is only sensible on 127.0.0.1.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { ApiError } from './errors.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function requireApiKey(keys: string[]): RequestHandler {
  const digests = keys.map(digest);
  return (req, res, next) => {
    if (digests.length === 0) return next();
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match) return next(new ApiError(401, 'Missing API key: send "Authorization: Bearer <key>"', 'authentication_error', 'missing_api_key'));
    const d = digest(match[1]!.trim());
    if (!digests.some((k) => timingSafeEqual(k, d))) return next(new ApiError(401, 'Incorrect API key provided', 'authentication_error', 'invalid_api_key'));
    res.locals.keyId = keyIdOf(d);
    next();
  };
}

/** How usage and traces name a key: a prefix of its SHA-256, never the key itself. */
export const keyIdOf = (sha256: Buffer) => `key_${sha256.toString('hex').slice(0, 12)}`;
