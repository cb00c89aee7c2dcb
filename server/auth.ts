/**
 * Bearer-key authentication against the key store (server/keys.ts). When no key is configured
 * the API is open, which is only sensible on 127.0.0.1. The caller's key (id, tier, limits) is
 * left in `res.locals.key` for the routes.
 */
import type { RequestHandler } from 'express';
import { ApiError } from './errors.js';
import type { CallerKey, KeyStore } from './keys.js';

export function requireApiKey(store: KeyStore): RequestHandler {
  return (req, res, next) => {
    if (!store.required) return next();
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match) return next(new ApiError(401, 'Missing API key: send "Authorization: Bearer <key>"', 'authentication_error', 'missing_api_key'));
    const key = store.lookup(match[1]!.trim());
    if (!key) return next(new ApiError(401, 'Incorrect API key provided', 'authentication_error', 'invalid_api_key'));
    res.locals.key = key;
    res.locals.keyId = key.id;
    next();
  };
}

/** The authenticated caller's key, when keys are configured. */
export const callerKey = (locals: Record<string, unknown>): CallerKey | undefined => locals.key as CallerKey | undefined;
