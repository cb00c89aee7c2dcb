/**
 * A pool worker: serves `generate` on one pool's task queue and calls the endpoints of the
 * deployments on that pool. Run one process per pool (or several, to scale it out).
 *
 *   tsx workers/pool.ts <pool>
 */
import { Worker, type NativeConnection } from '@temporalio/worker';
import { pathToFileURL } from 'node:url';
import { createPoolActivities } from '../activities/pool.js';
import { createCallEvaluator } from '../activities/call-evaluator.js';
import { createLogger, type Logger } from '../common/logger.js';
import { loadConfig, REPO_ROOT, type CascadeConfig } from '../config/load.js';
import { poolTaskQueue } from '../common/names.js';
import { connectWorker, dataConverter } from './connection.js';
import { installRuntime } from './runtime.js';
import { poolMetricsInterceptor } from './metrics.js';
import { createRegistry, metricsEnabled, metricsPort, serveMetrics } from '../common/metrics.js';
import type { Registry } from 'prom-client';

export async function createPoolWorker(opts: {
  config: CascadeConfig;
  pool: string;
  connection: NativeConnection;
  logger: Logger;
  /** Where the worker's metrics go (workers/metrics.ts); none when absent. */
  metrics?: Registry;
}): Promise<Worker> {
  const { config, pool, connection, logger, metrics } = opts;
  const poolConfig = config.raw.pools[pool];
  if (!poolConfig) throw new Error(`unknown pool "${pool}" (pools: ${Object.keys(config.raw.pools).join(', ')})`);
  return Worker.create({
    connection,
    namespace: config.raw.temporal.namespace,
    taskQueue: poolConfig.task_queue ?? poolTaskQueue(pool),
    // Answers are evaluated with the call where the evaluator needs no model file (activities/call-evaluator.ts).
    activities: createPoolActivities({ config, pools: [pool], logger, evaluate: createCallEvaluator({ modelsDir: REPO_ROOT, logger, modelFiles: false }) }),
    dataConverter: dataConverter(config),
    interceptors: { activity: metrics ? [poolMetricsInterceptor(metrics, pool)] : [] },
    maxConcurrentActivityTaskExecutions: poolConfig.concurrency,
  });
}

async function run(): Promise<void> {
  const pool = process.argv[2];
  if (!pool) throw new Error('usage: tsx workers/pool.ts <pool>');
  const config = loadConfig();
  const logger = createLogger(`pool-worker:${pool}`);
  installRuntime(logger);
  const metrics = metricsEnabled() ? createRegistry(`pool:${pool}`) : undefined;
  const worker = await createPoolWorker({ config, pool, connection: await connectWorker(config), logger, ...(metrics && { metrics }) });
  logger.info({ pool, pid: process.pid, metrics: metrics ? await serveMetrics(metrics, metricsPort(), logger) : null }, 'pool worker ready');
  // The SDK's runtime drains the worker on SIGINT/SIGTERM.
  await worker.run();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().catch((err) => {
    console.error(`pool worker failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
