/**
 * The router worker: runs cascade workflows and their local activities (routing state,
 * evaluation). Any number of router workers can serve the same task queue.
 *
 *   tsx workers/router.ts            (config from CASCADE_CONFIG or config/cascade.yaml)
 */
import { Worker, type NativeConnection } from '@temporalio/worker';
import { pathToFileURL } from 'node:url';
import { createRouterActivities, createRouterSinks } from '../activities/router.js';
import { createDocumentActivities } from '../activities/document.js';
import { createBudgetActivities } from '../activities/budget.js';
import { createDocumentStore } from '../activities/document-store.js';
import { createPoolActivities } from '../activities/pool.js';
import { DeploymentHealth } from '../activities/breaker.js';
import { createLogger, type Logger } from '../common/logger.js';
import { loadConfig, REPO_ROOT, type CascadeConfig } from '../config/load.js';
import { connectClient, connectWorker, dataConverter } from './connection.js';
import { createLearnActivities, LearnedStats } from '../activities/learned.js';
import { installRuntime } from './runtime.js';
import { workflowBundle } from './bundle.js';
import { registerRouterMetrics } from './metrics.js';
import { createRegistry, metricsEnabled, metricsPort, serveMetrics } from '../common/metrics.js';
import type { Registry } from 'prom-client';
import { KeyStore } from '../server/keys.js';

export async function createRouterWorker(opts: {
  config: CascadeConfig;
  connection: NativeConnection;
  logger: Logger;
  /** Where the worker's metrics go (workers/metrics.ts); none when absent. */
  metrics?: Registry;
  /** Routing state shared with the API process it is embedded in; its own when absent. */
  health?: DeploymentHealth;
  /** Learned stats shared with the API process it is embedded in (the first step's decision travels with the start). */
  learned?: LearnedStats;
  /** The keys file, shared with the API process it is embedded in; its own reader when absent. */
  keys?: KeyStore;
}): Promise<Worker> {
  const { config, connection, logger, metrics } = opts;
  const health = opts.health ?? deploymentHealth(config);
  // Learned stats are read (queries) and collected (visibility) through a client: the embedding
  // API process's, or one of the worker's own.
  const ownClient = opts.learned ? null : await connectClient(config);
  const learned = opts.learned ?? new LearnedStats(ownClient!, config.raw.temporal.task_queue, logger);
  // Pools with `dispatch: local` are called from here, as local activities of the cascade.
  const localPools = Object.entries(config.raw.pools)
    .filter(([, p]) => p.dispatch === 'local')
    .map(([name]) => name);
  const routerActivities = createRouterActivities({ health, learned, logger, modelsDir: REPO_ROOT });
  const worker = await Worker.create({
    connection,
    namespace: config.raw.temporal.namespace,
    taskQueue: config.raw.temporal.task_queue,
    workflowBundle: await workflowBundle(logger),
    dataConverter: dataConverter(config),
    activities: {
      ...routerActivities,
      ...createLearnActivities(learned.client),
      ...createBudgetActivities(opts.keys ?? new KeyStore(config, process.env, logger)),
      ...createDocumentActivities({ store: createDocumentStore(config), logger, webhookAllowHosts: config.raw.documents.webhook_allow_hosts }),
      ...(localPools.length > 0 && createPoolActivities({ config, pools: localPools, limitConcurrency: true, logger, evaluate: routerActivities.evaluate })),
    },
    sinks: createRouterSinks(health),
    maxConcurrentWorkflowTaskExecutions: 64,
    maxConcurrentLocalActivityExecutions: 64,
    maxCachedWorkflows: 1000,
    // After a router worker dies, its cached workflows move to another worker after this long:
    // the SDK's 10 s default would stall every in-flight request for that long.
    stickyQueueScheduleToStartTimeout: '2s',
  });
  if (ownClient) {
    // The worker's own client lives as long as the worker runs.
    const run = worker.run.bind(worker);
    worker.run = () => run().finally(() => ownClient.connection.close());
  }
  if (metrics) registerRouterMetrics(metrics, health, () => worker.getStatus().numCachedWorkflows);
  return worker;
}

export function deploymentHealth(config: CascadeConfig): DeploymentHealth {
  return new DeploymentHealth({ failureThreshold: config.raw.breaker.failure_threshold, openMs: config.raw.breaker.open_ms });
}

async function run(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger('router-worker');
  installRuntime(logger);
  const metrics = metricsEnabled() ? createRegistry('router') : undefined;
  const worker = await createRouterWorker({ config, connection: await connectWorker(config), logger, ...(metrics && { metrics }) });
  logger.info(
    { task_queue: config.raw.temporal.task_queue, pid: process.pid, metrics: metrics ? await serveMetrics(metrics, metricsPort(), logger) : null },
    'router worker ready',
  );
  // The SDK's runtime drains the worker on SIGINT/SIGTERM.
  await worker.run();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().catch((err) => {
    console.error(`router worker failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
