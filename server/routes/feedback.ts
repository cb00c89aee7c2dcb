/**
 * POST /v1/cascade/{id}/feedback — a delayed label for one finished request:
 * `{"label": "good"|"bad", "score"?: 0..1, "note"?: string}`. Stored durably with the policy's
 * labels (server/feedback.ts); a second label for the same request replaces the first. Shown by
 * GET /v1/cascade/{id}; read by `npm run calibrate -- --from-feedback`.
 */
import express, { type Router } from 'express';
import { WorkflowNotFoundError } from '@temporalio/client';
import { z } from 'zod';
import type { Ledger } from '../ledger.js';
import { callerKey } from '../auth.js';
import { hiddenFrom } from './usage.js';
import type { FeedbackStore } from '../feedback.js';
import { ApiError } from '../errors.js';

const feedbackBody = z
  .object({
    label: z.enum(['good', 'bad']),
    score: z.number().min(0).max(1).optional(),
    note: z.string().max(500).optional(),
  })
  .strict();

export function feedbackRoutes(ledger: Ledger, feedback: FeedbackStore): Router {
  const router = express.Router();
  router.post('/cascade/:id/feedback', async (req, res) => {
    const raw: unknown = req.body;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw))
      throw ApiError.invalid('Request body must be a JSON object (send Content-Type: application/json)', null, 'invalid_body');
    const parsed = feedbackBody.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const param = issue.path.map(String).join('.') || null;
      throw ApiError.invalid(`Invalid feedback${param ? ` at '${param}'` : ''}: ${issue.message}`, param, 'invalid_value');
    }
    const id = req.params.id;
    const record = await ledger.record(id).catch((err: unknown) => {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    });
    // A key that sees only its own requests labels only its own (labels steer the policy's calibration).
    if (!record || hiddenFrom(callerKey(res.locals), record))
      throw new ApiError(404, `No cascade request ${id}`, 'invalid_request_error', 'request_not_found', 'id');
    if ('running' in record)
      throw new ApiError(409, `Request ${id} is still running; label it once it has finished`, 'invalid_request_error', 'request_running', 'id');
    const { label, score, note } = parsed.data;
    const entry = { workflow_id: id, label, score: score ?? (label === 'good' ? 1 : 0), ...(note !== undefined && { note }), at: new Date().toISOString() };
    await feedback.set(record.policy, entry);
    res.json({ object: 'cascade.feedback', policy: record.policy, ...entry });
  });
  return router;
}
