/**
 * Prometheus metrics (prom-client): one registry per process, labelled with the process name,
 * scraped per process at /metrics (the API on its own port, each worker on the port
 * CASCADE_METRICS_PORT gives it). Sums across processes are PromQL's job (docs/operations.md).
 * CASCADE_METRICS=off leaves them out of a process.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Logger } from 'pino';

export function createRegistry(processName: string, opts: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ process: processName });
  // CPU, memory, event-loop lag: computed at scrape time, nothing per request.
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry });
  return registry;
}

/** Latency buckets (seconds) from a cached answer (~50 ms) to a long generation (2 min). */
export const LATENCY_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120];

/**
 * A worker's /metrics on 127.0.0.1 (workers have no other HTTP server). Port 0 picks a free one;
 * resolves with the scrape URL.
 */
export async function serveMetrics(registry: Registry, port: number, logger: Logger): Promise<string> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { message: `Unknown route ${req.method} ${req.url}`, type: 'invalid_request_error', param: null, code: 'unknown_url' } }));
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: Error) => {
        logger.error({ err: err.message }, 'metrics collection failed');
        res.writeHead(500).end();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  server.unref(); // never what keeps a worker alive
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
}

/** CASCADE_METRICS=off turns a process's metrics off: no /metrics, nothing observed per request or call. */
export function metricsEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CASCADE_METRICS !== 'off';
}

/** CASCADE_METRICS_PORT, or 0 (a free port). */
export function metricsPort(env: NodeJS.ProcessEnv = process.env): number {
  const port = Number(env.CASCADE_METRICS_PORT ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`CASCADE_METRICS_PORT: "${env.CASCADE_METRICS_PORT}" is not a port number`);
  return port;
}
