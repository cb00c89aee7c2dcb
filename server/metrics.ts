/**
 * The API's metrics, one observation per chat request when its response ends: requests by policy
 * / final step / model / status, escalations, time to first byte and total latency, per-step
 * latency and evaluator confidence, cost and the cost the policy's top model would have had,
 * failovers and retries from the trace, requests in flight here, and (at scrape time) the cascade
 * workflows running in Temporal. The route only leaves its result in `res.locals.cascadeResult`.
 */
import type { RequestHandler, Response } from 'express';
import type { Client } from '@temporalio/client';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CascadeResult, CascadeTrace } from '../common/types.js';
import { LATENCY_BUCKETS } from '../common/metrics.js';
import { topModelCostUsd, topModelOf } from '../common/savings.js';
import { resolveTarget, type CascadeConfig } from '../config/load.js';
import { stepOutcomes } from './trace-stats.js';

/** What the route leaves for the metrics (and nothing else reads). */
export interface ChatLocals {
  cascadeResult?: CascadeResult;
  /**
   * The Idempotency-Key named a workflow an earlier request started: the response counts as a
   * request, but its trace's calls, cost and escalations were counted with that request.
   */
  cascadeJoined?: boolean;
}

const CONFIDENCE_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1];

export class ApiMetrics {
  private readonly requests;
  private readonly escalations;
  private readonly totalSeconds;
  private readonly ttftSeconds;
  private readonly stepSeconds;
  private readonly confidence;
  private readonly costUsd;
  private readonly topModelCostUsd;
  private readonly savedUsd;
  private readonly failovers;
  private readonly retries;
  private readonly earlyAborts;
  private readonly hedges;
  private readonly degraded;
  readonly inFlight;

  constructor(
    registry: Registry,
    private readonly config: CascadeConfig,
    client?: Client,
  ) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'cascade_requests_total',
      help: 'Chat requests answered by the API, by policy, final step, answering model and HTTP status',
      labelNames: ['policy', 'final_step', 'model', 'status', 'code'],
      registers,
    });
    this.escalations = new Counter({ name: 'cascade_escalations_total', help: 'Escalations to a stronger step', labelNames: ['policy'], registers });
    this.totalSeconds = new Histogram({
      name: 'cascade_request_seconds',
      help: 'Request latency at the API, arrival to last byte',
      labelNames: ['policy', 'stream'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.ttftSeconds = new Histogram({
      name: 'cascade_ttft_seconds',
      help: 'Time to first byte of the response body (the first token for streams)',
      labelNames: ['policy', 'stream'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.stepSeconds = new Histogram({
      name: 'cascade_step_seconds',
      help: 'Latency of each step attempt in the trace, by outcome (accepted, rejected, error, sample, skipped)',
      labelNames: ['policy', 'step', 'model', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.confidence = new Histogram({
      name: 'cascade_evaluator_confidence',
      help: "Evaluator confidence of each evaluated step's answer",
      labelNames: ['policy', 'step', 'model'],
      buckets: CONFIDENCE_BUCKETS,
      registers,
    });
    this.costUsd = new Counter({
      name: 'cascade_cost_usd_total',
      help: 'Cost of every billed call (failed attempts, samples and judges included), by model',
      labelNames: ['policy', 'model'],
      registers,
    });
    this.topModelCostUsd = new Counter({
      name: 'cascade_top_model_cost_usd_total',
      help: "What the answered requests would have cost on their policy's top model",
      labelNames: ['policy'],
      registers,
    });
    this.savedUsd = new Gauge({
      name: 'cascade_saved_usd',
      help: 'Top-model cost minus actual cost of answered requests since this process started (negative when escalations cost more)',
      labelNames: ['policy'],
      registers,
    });
    this.failovers = new Counter({
      name: 'cascade_failovers_total',
      help: 'Calls that failed on a deployment and moved to the next deployment or pool of the same step',
      labelNames: ['policy', 'model', 'from_pool'],
      registers,
    });
    this.retries = new Counter({
      name: 'cascade_retries_total',
      help: 'Temporal retries of model calls on the same deployment',
      labelNames: ['policy', 'model', 'pool'],
      registers,
    });
    this.earlyAborts = new Counter({
      name: 'cascade_early_aborts_total',
      help: 'Answers that streaming evaluation stopped before their end (paid for up to the stop, never returned)',
      labelNames: ['policy', 'step', 'model'],
      registers,
    });
    this.hedges = new Counter({
      name: 'cascade_hedges_total',
      help: 'Steps started alongside the step before them, by whether the hedged step gave the answer (won) or not (lost)',
      labelNames: ['policy', 'step', 'result'],
      registers,
    });
    this.degraded = new Counter({
      name: 'cascade_degraded_total',
      help: 'Requests answered with the best rejected answer because no stronger step could answer',
      labelNames: ['policy'],
      registers,
    });
    this.inFlight = new Gauge({ name: 'cascade_requests_in_flight', help: 'Chat requests this API process is serving', registers });
    if (client)
      new Gauge({
        name: 'cascade_workflows_running',
        help: 'Cascade workflows running in Temporal (all API processes and routers; a visibility count at scrape time)',
        registers,
        async collect() {
          const count = await Promise.race([
            client.workflow.count('WorkflowType = "cascadeWorkflow" AND ExecutionStatus = "Running"').then((c) => c.count),
            new Promise<null>((r) => setTimeout(r, 2000, null).unref()),
          ]).catch(() => null);
          if (count !== null) this.set(count);
        },
      });
  }

  /** One finished chat request. */
  observe(o: {
    policy: string;
    status: number;
    code: string | null;
    stream: boolean;
    totalMs: number;
    ttftMs: number;
    result?: CascadeResult;
    trace?: CascadeTrace;
    /** See ChatLocals.cascadeJoined. */
    joined?: boolean;
  }) {
    const trace = o.result?.cascade ?? o.trace;
    const policy = trace?.policy ?? o.policy;
    const stream = String(o.stream);
    this.requests.inc({
      policy,
      final_step: String(trace?.final_step ?? 'none'),
      model: o.result?.model ?? 'none',
      status: String(o.status),
      code: o.code ?? '',
    });
    this.totalSeconds.observe({ policy, stream }, o.totalMs / 1000);
    this.ttftSeconds.observe({ policy, stream }, o.ttftMs / 1000);
    if (!trace || o.joined) return;
    if (trace.escalations) this.escalations.inc({ policy }, trace.escalations);
    if (trace.degraded) this.degraded.inc({ policy });
    for (const h of trace.hedges ?? [])
      this.hedges.inc({ policy, step: String(h.step), result: trace.final_step === h.step && !trace.degraded ? 'won' : 'lost' });
    for (const s of stepOutcomes(trace)) {
      const step = String(s.attempt.step);
      const model = s.attempt.model;
      if (s.attempt.latency_ms !== null) this.stepSeconds.observe({ policy, step, model, outcome: s.outcome }, s.attempt.latency_ms / 1000);
      if (s.attempt.confidence !== null) this.confidence.observe({ policy, step, model }, s.attempt.confidence);
      if (s.attempt.cost_usd > 0) this.costUsd.inc({ policy, model }, s.attempt.cost_usd);
      if (s.attempt.retries) this.retries.inc({ policy, model, pool: s.attempt.pool ?? '' }, s.attempt.retries);
      if (s.failedOver) this.failovers.inc({ policy, model, from_pool: s.attempt.pool ?? '' });
      if (s.attempt.stopped_early) this.earlyAborts.inc({ policy, step, model });
    }
    const top = topModelCostUsd(topModelOf(this.config, policy), o.result?.usage);
    if (top !== null) {
      this.topModelCostUsd.inc({ policy }, top);
      this.savedUsd.inc({ policy }, top - trace.cost_usd);
    }
  }

  /** Observes every request of the route it is mounted before, when its response ends. */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const started = performance.now();
      let firstByte: number | null = null;
      let errorBody: { error?: { code?: string | null; cascade?: CascadeTrace } } | undefined;
      const write = res.write.bind(res) as Response['write'];
      res.write = ((...args: Parameters<Response['write']>) => {
        firstByte ??= performance.now();
        return write(...args);
      }) as Response['write'];
      const json = res.json.bind(res);
      res.json = (body: unknown) => {
        if (res.statusCode >= 400) errorBody = body as typeof errorBody;
        return json(body);
      };
      this.inFlight.inc();
      res.once('close', () => {
        this.inFlight.dec();
        const now = performance.now();
        const body = req.body as { model?: unknown; stream?: unknown } | undefined;
        const status = res.writableFinished ? res.statusCode : 499;
        this.observe({
          policy: typeof body?.model === 'string' ? policyName(this.config, body.model) : 'unknown',
          status,
          code: errorBody?.error?.code ?? null,
          stream: body?.stream === true,
          totalMs: now - started,
          ttftMs: (firstByte ?? now) - started,
          result: status < 400 ? (res.locals as ChatLocals).cascadeResult : undefined,
          trace: errorBody?.error?.cascade,
          joined: (res.locals as ChatLocals).cascadeJoined === true,
        });
      });
      next();
    };
  }
}

function policyName(config: CascadeConfig, model: string): string {
  return resolveTarget(config, model)?.policy.name ?? 'unknown';
}

export function metricsRoute(registry: Registry): RequestHandler {
  return async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  };
}
