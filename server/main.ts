/**
 * The API process: `tsx server/main.ts` (config from CASCADE_CONFIG or config/cascade.yaml;
 * PORT overrides the configured port). Stateless: run as many as you like behind a balancer.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { createLogger } from '../common/logger.js';
import { loadConfig } from '../config/load.js';
import { connectClient } from '../workers/connection.js';
import { createApp } from './app.js';

async function run(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger('api');
  const client = await connectClient(config);
  const port = process.env.PORT ? Number(process.env.PORT) : config.raw.server.port;
  const server = createServer(createApp({ config, client, logger }));
  server.headersTimeout = 10_000;
  server.requestTimeout = 0; // long cascades are bounded by their own deadline
  // The bound port, not the asked one: npm start runs its API processes on port 0 behind its front.
  server.listen(port, config.raw.server.host, () => logger.info({ port: (server.address() as AddressInfo).port, host: config.raw.server.host }, 'api ready'));
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().catch((err) => {
    console.error(`api failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
