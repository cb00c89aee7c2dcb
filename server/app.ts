/**
 * The express app (no listen here): routes, body limits, auth and the central error handler.
 */
import express, { type Express } from 'express';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { CascadeConfig } from '../config/load.js';
import { requireApiKey } from './auth.js';
import { KeyStore } from './keys.js';
import { Budgets } from './budgets.js';
import { errorHandler, notFound } from './errors.js';
import { chatCompletionsRoute } from './routes/chat-completions.js';
import { documentsRoutes } from './routes/documents.js';
import { healthRoute } from './routes/health.js';
import { modelsRoute } from './routes/models.js';
import { StreamHub } from './stream-hub.js';
import { registerLocalStreamHub } from '../activities/stream-sink.js';
import { STREAM_PATH } from '../common/stream.js';
import type { Registry } from 'prom-client';
import { createRegistry, metricsEnabled } from '../common/metrics.js';
import { ApiMetrics, metricsRoute } from './metrics.js';
import { Ledger } from './ledger.js';
import { usageRoutes } from './routes/usage.js';
import { chatStarter } from './chat-workflow.js';
import { routeFor, type DeploymentHealth } from '../activities/breaker.js';
import type { LearnedStats } from '../activities/learned.js';
import { feedbackRoutes } from './routes/feedback.js';
import { FeedbackStore } from './feedback.js';

export interface AppDeps {
  config: CascadeConfig;
  client: Client;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** The process's metrics registry (GET /metrics); a fresh one when absent. */
  metrics?: Registry;
  /** The API keys (keys file and env); read from `env` and the config when absent. */
  keys?: KeyStore;
  /**
   * A router worker shares `client`'s connection in this process (`temporal.embedded_router`):
   * workflows start eagerly on it, with the first step routed by its routing state.
   */
  embeddedRouter?: { health: DeploymentHealth; learned?: LearnedStats };
}

export function createApp({
  config,
  client,
  logger,
  env = process.env,
  metrics = createRegistry('api', { processMetrics: false }),
  keys = new KeyStore(config, env, logger),
  embeddedRouter,
}: AppDeps): Express {
  const app = express();
  const apiMetrics = metricsEnabled(env) ? new ApiMetrics(metrics, config, client) : null;
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/healthz', healthRoute(client));
  // Live answers from the model-call workers (authenticated per request by a token, not an API key).
  const hub = new StreamHub(logger);
  registerLocalStreamHub(hub); // local activities of an embedded router hand deltas over in memory
  app.post(`${STREAM_PATH}/:workflowId`, hub.ingest());
  // Outside /v1: scraped without an API key (the API listens on loopback unless configured otherwise).
  if (apiMetrics) app.get('/metrics', metricsRoute(metrics));
  const v1 = express.Router();
  v1.use(requireApiKey(keys));
  // Before the JSON parser below: documents have their own, larger limit and multipart uploads.
  const budgets = new Budgets(client, config);
  v1.use('/documents', documentsRoutes({ config, client, logger, budgets }));
  // Any content type is parsed as JSON: clients that forget the header still get a clear answer.
  v1.use(express.json({ limit: config.raw.server.max_body_bytes, type: () => true, strict: false }));
  v1.get('/models', modelsRoute(config));
  const ledger = new Ledger(client, config);
  const feedback = new FeedbackStore(client, config.raw.temporal.task_queue);
  v1.use(usageRoutes(ledger, feedback));
  v1.use(feedbackRoutes(ledger, feedback));
  v1.get('/budget', budgets.statusRoute());
  v1.post(
    '/chat/completions',
    ...(apiMetrics ? [apiMetrics.middleware()] : []),
    chatCompletionsRoute({
      config,
      starter: chatStarter(
        client,
        config,
        embeddedRouter && {
          // The first step's learned decisions (activities/learned.ts) travel with its route.
          route: (m, input) => ({ ...routeFor(embeddedRouter.health, m.name, m.deployments), ...embeddedRouter.learned?.firstStep(input.policy) }),
        },
      ),
      logger,
      hub,
      budgets,
    }),
  );
  app.use('/v1', v1);
  app.use(notFound);
  app.use(errorHandler(logger));
  return app;
}
