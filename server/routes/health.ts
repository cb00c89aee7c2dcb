/** GET /healthz — the API is up and Temporal answers. 503 when Temporal does not. */
import type { RequestHandler } from 'express';
import type { Client } from '@temporalio/client';

export function healthRoute(client: Client): RequestHandler {
  return async (_req, res) => {
    try {
      await client.connection.withDeadline(Date.now() + 2000, () => client.connection.workflowService.getSystemInfo({}));
      res.json({ status: 'ok', temporal: 'ok' });
    } catch (err) {
      res.status(503).json({
        status: 'degraded',
        temporal: 'unreachable',
        error: { message: (err as Error).message, type: 'service_unavailable_error', param: null, code: 'temporal_unreachable' },
      });
    }
  };
}
