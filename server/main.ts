/**
 * The API process: `tsx server/main.ts` (config from CASCADE_CONFIG or config/cascade.yaml;
 * PORT overrides the configured port). Stateless: run as many as you like behind a balancer.
 * With encryption on, it also serves the Temporal UI's codec endpoint on 127.0.0.1.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { createLogger } from '../common/logger.js';
import { loadConfig, type CascadeConfig } from '../config/load.js';
import { Client } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import type { Registry } from 'prom-client';
import { connectClient, connectWorker, dataConverter, encryptionCodec } from '../workers/connection.js';
import { LearnedStats } from '../activities/learned.js';
import { createRouterWorker, deploymentHealth } from '../workers/router.js';
import type { DeploymentHealth } from '../activities/breaker.js';
import { installRuntime } from '../workers/runtime.js';
import { createApp } from './app.js';
import { createCodecApp } from './codec.js';
import { createRegistry, metricsEnabled } from '../common/metrics.js';
import { KeyStore } from './keys.js';

/**
 * CASCADE_CODEC_PORT overrides `encryption.codec_port`. A second API process on the same host
 * finds the port taken: it warns and serves the API anyway.
 */
function serveCodecEndpoint(config: CascadeConfig, logger: Logger): void {
  const { codec_allow_origins: allowOrigins } = config.raw.encryption;
  const port = process.env.CASCADE_CODEC_PORT ? Number(process.env.CASCADE_CODEC_PORT) : config.raw.encryption.codec_port;
  const codec = encryptionCodec(config);
  if (!codec || port === 0) return;
  const server = createServer(createCodecApp({ codec, allowOrigins, logger }));
  server.on('error', (err) => logger.warn({ err: err.message, port }, 'codec endpoint not started'));
  server.listen(port, '127.0.0.1', () => logger.info({ url: `http://127.0.0.1:${port}` }, 'codec endpoint ready'));
}

/**
 * With `temporal.embedded_router`, a router worker runs in this process on the client's own
 * connection (eager start needs both on one NativeConnection). Its metrics join the API's.
 */
async function connect(
  config: CascadeConfig,
  logger: Logger,
  metrics: Registry,
  keys: KeyStore,
): Promise<{ client: Client; worker: Worker | null; health?: DeploymentHealth; learned?: LearnedStats }> {
  if (!config.raw.temporal.embedded_router) return { client: await connectClient(config), worker: null };
  installRuntime(logger); // before the first native connection
  const connection = await connectWorker(config);
  const client = new Client({ connection, namespace: config.raw.temporal.namespace, dataConverter: dataConverter(config) });
  const health = deploymentHealth(config);
  const learned = new LearnedStats(client, config.raw.temporal.task_queue, logger);
  const worker = await createRouterWorker({ config, connection, logger, ...(metricsEnabled() && { metrics }), health, learned, keys });
  return { client, worker, health, learned };
}

async function run(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger('api');
  const metrics = createRegistry('api');
  // One reader of the keys file for the API and its embedded router's budget activities.
  const keys = new KeyStore(config, process.env, logger);
  const { client, worker, health, learned } = await connect(config, logger, metrics, keys);
  const port = process.env.PORT ? Number(process.env.PORT) : config.raw.server.port;
  const server = createServer(createApp({ config, client, logger, metrics, keys, ...(health && { embeddedRouter: { health, learned } }) }));
  server.headersTimeout = 10_000;
  server.requestTimeout = 0; // long cascades are bounded by their own deadline
  serveCodecEndpoint(config, logger);
  // The bound port, not the asked one: npm start runs its API processes on port 0 behind its front.
  server.listen(port, config.raw.server.host, () => logger.info({ port: (server.address() as AddressInfo).port, host: config.raw.server.host }, 'api ready'));
  if (!worker) {
    const stop = () => server.close(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    return;
  }
  // The SDK's runtime drains the worker on SIGINT/SIGTERM; the HTTP server stops with it. A worker
  // that fails takes the process down, to be restarted whole: an API without its router would
  // still start workflows, but never eagerly.
  await worker.run();
  server.close(() => process.exit(0));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().catch((err) => {
    console.error(`api failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
