/**
 * Local activities of the router worker: routing state (circuit breakers, measured latency),
 * evaluation and pre-routing. They run in the router worker's process next to the workflow, so
 * each costs well under a millisecond of scheduling.
 */
import type { Logger } from 'pino';
import type { Sinks } from '@temporalio/workflow';
import type { InjectedSinks } from '@temporalio/worker';
import type { ChatMessage, DeploymentRef, PolicyStep, PrerouterSpec } from '../common/types.js';
import type { Evaluation } from '../evaluators/types.js';
import { loadPrerouter, type Prerouter } from '../evaluators/index.js';
import { createCallEvaluator } from './call-evaluator.js';
import type { DeploymentReport, EvaluateCall } from '../workflows/cascade-core.js';
import type { RouteDecision } from '../common/types.js';
import { DeploymentHealth, routeFor } from './breaker.js';
import type { LearnedStats } from './learned.js';
import type { LearnQuery } from '../workflows/learn.js';
import { sendStreamMessage } from './stream-sink.js';
import type { StreamTarget } from '../common/stream.js';
import { Context } from '@temporalio/activity';

export interface RouterActivityDeps {
  health: DeploymentHealth;
  /** The policies' learned stats (activities/learned.ts); without it no step is skipped for being unprofitable. */
  learned?: LearnedStats;
  logger: Logger;
  /** Relative model files in policies resolve against this directory. */
  modelsDir: string;
}

export function createRouterActivities({ health, learned, logger, modelsDir }: RouterActivityDeps) {
  const prerouters = new Map<string, Promise<Prerouter>>();
  const evaluate = createCallEvaluator({ modelsDir, logger, modelFiles: true });

  return {
    async route(input: { model: string; deployments: DeploymentRef[]; learn?: LearnQuery }): Promise<RouteDecision> {
      const route = routeFor(health, input.model, input.deployments);
      return input.learn && learned ? { ...route, learned: learned.decisions(input.learn) } : route;
    },

    async evaluate(call: EvaluateCall): Promise<Evaluation> {
      return (await evaluate(call))!; // with model files it always evaluates
    },

    /** A hedged step won (the other lost): the API shows its text held so far, and the rest live. */
    async promote(input: { target: StreamTarget; step: number }): Promise<boolean> {
      const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
      return sendStreamMessage(input.target, workflowId, { type: 'promote', step: input.step });
    },

    async preroute(input: { policy: string; prerouter: PrerouterSpec; steps: PolicyStep[]; messages: ChatMessage[] }): Promise<number[] | null> {
      let p = prerouters.get(input.prerouter.model_file);
      if (!p) {
        p = loadPrerouter(input.prerouter.model_file, { modelsDir, logger });
        p.catch(() => prerouters.delete(input.prerouter.model_file));
        prerouters.set(input.prerouter.model_file, p);
      }
      try {
        const predictions = await (await p).predict(input.messages);
        return input.steps.map((s) => predictions[s.model] ?? 1);
      } catch (err) {
        // Without a pre-router the cascade still works, only without skipping: never fail a request for it.
        logger.warn({ policy: input.policy, err: (err as Error).message }, 'pre-router unavailable; not skipping steps');
        return null;
      }
    },
  };
}

export type RouterActivities = ReturnType<typeof createRouterActivities>;

/** Outcomes of model calls, sent by workflows through a sink (workflows/cascade.ts). */
export function recordReport(health: DeploymentHealth, report: DeploymentReport): void {
  health.record(report.deploymentId, report.ok, report.errorType);
  if (report.ok && report.latencyMs != null) health.recordLatency([report.model, report.deploymentId], report.latencyMs);
  if (report.pool && report.queuedMs != null) health.backlog.record(report.pool, report.queuedMs);
}

/** What workflows send to the router worker without a round trip (workflow sinks). */
export interface RouterSinks extends Sinks {
  health: { record(report: DeploymentReport): void };
}

/** The router worker's implementation of RouterSinks: not called again when a workflow replays. */
export function createRouterSinks(health: DeploymentHealth): InjectedSinks<RouterSinks> {
  return { health: { record: { fn: (_info, report) => recordReport(health, report), callDuringReplay: false } } };
}
