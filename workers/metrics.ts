/**
 * The workers' metrics: each pool worker measures its model calls through an activity
 * interceptor (no change to the activity code): schedule-to-start latency (how long a call waited
 * for a free slot — the pool's backlog), call latency and outcome, retries, calls in flight. The
 * router worker reports its circuit breakers and the workflows in its cache.
 */
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { DeploymentHealth } from '../activities/breaker.js';
import { LATENCY_BUCKETS } from '../common/metrics.js';

const SCHEDULE_TO_START_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];

export function poolMetricsInterceptor(registry: Registry, pool: string): ActivityInterceptorsFactory {
  const scheduleToStart = new Histogram({
    name: 'cascade_pool_schedule_to_start_seconds',
    help: 'Time a model call waited on the pool task queue before a worker slot took it (backlog)',
    labelNames: ['pool'],
    buckets: SCHEDULE_TO_START_BUCKETS,
    registers: [registry],
  });
  const callSeconds = new Histogram({
    name: 'cascade_pool_call_seconds',
    help: 'Duration of one attempt of a model call on this pool',
    labelNames: ['pool', 'model', 'outcome'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const calls = new Counter({
    name: 'cascade_pool_calls_total',
    help: 'Attempts of model calls on this pool by outcome (ok or the error type)',
    labelNames: ['pool', 'model', 'outcome'],
    registers: [registry],
  });
  const retries = new Counter({
    name: 'cascade_pool_retries_total',
    help: 'Attempts that were Temporal retries of a call on the same deployment',
    labelNames: ['pool', 'model'],
    registers: [registry],
  });
  const inFlight = new Gauge({ name: 'cascade_pool_calls_in_flight', help: 'Model calls running on this worker', labelNames: ['pool'], registers: [registry] });

  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        const started = Date.now();
        const model = (input.args[0] as { model?: unknown } | undefined)?.model;
        const labels = { pool, model: typeof model === 'string' ? model : ctx.info.activityType };
        scheduleToStart.observe({ pool }, Math.max(0, started - ctx.info.currentAttemptScheduledTimestampMs) / 1000);
        if (ctx.info.attempt > 1) retries.inc(labels);
        inFlight.inc({ pool });
        let outcome = 'ok';
        try {
          return await next(input);
        } catch (err) {
          outcome = (err as { type?: string }).type ?? (err as Error).name ?? 'error';
          throw err;
        } finally {
          inFlight.dec({ pool });
          calls.inc({ ...labels, outcome });
          callSeconds.observe({ ...labels, outcome }, (Date.now() - started) / 1000);
        }
      },
    },
  });
}

const STATE_VALUE = { closed: 0, 'half-open': 1, open: 2 } as const;

/** Breaker state per deployment, read from the router's DeploymentHealth at scrape time. */
export function registerRouterMetrics(registry: Registry, health: DeploymentHealth, cachedWorkflows: () => number): void {
  new Gauge({
    name: 'cascade_breaker_state',
    help: 'Circuit breaker of a deployment in this router worker: 0 closed, 1 half-open (probe allowed), 2 open',
    labelNames: ['deployment'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [deployment, { state }] of Object.entries(health.snapshot())) this.set({ deployment }, STATE_VALUE[state]);
    },
  });
  new Gauge({
    name: 'cascade_router_cached_workflows',
    help: 'Workflows held in this router worker (running requests and recently finished ones)',
    registers: [registry],
    collect() {
      this.set(cachedWorkflows());
    },
  });
}
