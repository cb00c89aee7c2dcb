/**
 * GET /v1/cascade/{id} — one request's record: status, policy, key id, the answering model and
 * usage, its cost and top-model cost, the full trace, and its delayed label (`feedback`, or null). GET /v1/usage?from=&to=&key=&policy=
 * — totals over the requests that closed in [from, to) (default: the last 24 hours), with a
 * breakdown per policy and per key. Both read the ledger (server/ledger.ts).
 */
import express, { type Router } from 'express';
import { WorkflowNotFoundError } from '@temporalio/client';
import { SearchAttr } from '../../common/names.js';
import { z } from 'zod';
import { totals, totalsBy } from '../../common/usage.js';
import type { Ledger } from '../ledger.js';
import type { FeedbackStore } from '../feedback.js';
import { ApiError } from '../errors.js';
import { callerKey } from '../auth.js';
import type { CallerKey } from '../keys.js';

/** A key whose tier says `usage: own` reads only its own requests in the ledger. */
const ownOnly = (key: CallerKey | undefined): string | undefined => (key?.limits.usage === 'own' ? key.id : undefined);

/** Whether a ledger record is another key's, for a caller that may see only its own (then: 404, as if absent). */
export function hiddenFrom(key: CallerKey | undefined, found: NonNullable<Awaited<ReturnType<Ledger['record']>>>): boolean {
  const own = ownOnly(key);
  return own !== undefined && ('running' in found ? found.description.typedSearchAttributes.get(SearchAttr.KeyId) : found.key_id) !== own;
}

const instant = z.union([
  z
    .string()
    .regex(/^\d{9,11}$/)
    .transform((s) => new Date(Number(s) * 1000)),
  z.iso.datetime({ offset: true }).transform((s) => new Date(s)),
  z.iso.date().transform((s) => new Date(`${s}T00:00:00Z`)),
]);

const usageQuery = z
  .object({
    from: instant.optional(),
    to: instant.optional(),
    key: z
      .string()
      .regex(/^key_[0-9a-f]{12}$/, 'expected a key id (key_ and 12 hex digits)')
      .optional(),
    policy: z.string().min(1).max(200).optional(),
  })
  .strict();

export function usageRoutes(ledger: Ledger, feedback: FeedbackStore): Router {
  const router = express.Router();

  router.get('/cascade/:id', async (req, res) => {
    let found: Awaited<ReturnType<Ledger['record']>> = null;
    try {
      found = await ledger.record(req.params.id);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    if (!found || hiddenFrom(callerKey(res.locals), found))
      throw new ApiError(404, `No cascade request ${req.params.id}`, 'invalid_request_error', 'request_not_found', 'id');
    if ('running' in found) res.json({ workflow_id: req.params.id, status: 'running', started_at: found.description.startTime.toISOString() });
    else res.json({ ...found, feedback: await feedback.get(found.policy, found.workflow_id) });
  });

  router.get('/usage', async (req, res) => {
    const parsed = usageQuery.safeParse(req.query);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const param = issue.path.map(String).join('.') || null;
      throw ApiError.invalid(`Invalid query${param ? ` parameter '${param}'` : ''}: ${issue.message}`, param, 'invalid_value');
    }
    const to = parsed.data.to ?? new Date();
    const from = parsed.data.from ?? new Date(to.getTime() - 24 * 3600_000);
    if (from >= to) throw ApiError.invalid("'from' must be before 'to'", 'from', 'invalid_value');
    const own = ownOnly(callerKey(res.locals));
    if (own && parsed.data.key && parsed.data.key !== own)
      throw new ApiError(
        403,
        "This key's tier shows it its own usage only (keys.tiers.<tier>.usage: own)",
        'invalid_request_error',
        'usage_not_allowed',
        'key',
      );
    const keyId = own ?? parsed.data.key;
    const records = await ledger.records({ from, to, keyId, policy: parsed.data.policy });
    res.json({
      object: 'cascade.usage',
      from: from.toISOString(),
      to: to.toISOString(),
      ...(keyId && { key: keyId }),
      ...(parsed.data.policy && { policy: parsed.data.policy }),
      totals: totals(records),
      by_policy: totalsBy(records, 'policy'),
      by_key: totalsBy(records, 'key_id'),
    });
  });
  return router;
}
