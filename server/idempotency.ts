/**
 * `Idempotency-Key`: the caller's key names the workflow, so a retried request (after a timeout,
 * a dropped connection or a restarted API process) finds the work already started or done
 * instead of paying for it again. A key is hashed into the id: any string is a safe id, and the
 * key itself never shows in the Temporal UI.
 */
import { createHash } from 'node:crypto';
import type { Request } from 'express';
import { ApiError } from './errors.js';

export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** The request's key, or undefined without one; a key that is empty or too long is a 400. */
export function idempotencyKeyOf(req: Request): string | undefined {
  const key = req.get('idempotency-key');
  if (key !== undefined && (key.length === 0 || key.length > 255)) {
    throw ApiError.invalid('Idempotency-Key must be 1 to 255 characters', 'Idempotency-Key', 'invalid_idempotency_key');
  }
  return key;
}

/**
 * Workflow id for a key: `<prefix>-idem-<40 hex digits>`. With API keys, each caller's
 * Idempotency-Keys are its own (`apiKeyId`): two callers who both count 1, 2, 3 never meet in
 * one workflow, and one cannot read another's answer by sending the same body and key.
 */
export const idempotentWorkflowId = (prefix: string, key: string, apiKeyId?: string) =>
  `${prefix}-idem-${sha256(apiKeyId ? `${apiKeyId}\n${key}` : key).slice(0, 40)}`;

export const keyReused = () =>
  new ApiError(
    409,
    'This Idempotency-Key was already used with a different request body',
    'invalid_request_error',
    'idempotency_key_reused',
    'Idempotency-Key',
  );
