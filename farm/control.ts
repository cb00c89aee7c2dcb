/**
 * Farm control endpoints, served on every pool's port under /farm and /_farm, over farm-wide state:
 *   GET    /farm/log?request_id=&pool=&model=   the attempt log
 *   POST   /farm/reset                          clear once-counters and the log, restart the flap clock
 *   GET    /farm/faults                         runtime faults
 *   POST   /farm/faults {fault, pool?, model?}  add a runtime fault
 *   DELETE /farm/faults                         clear runtime faults
 *   GET    /farm/pools                          each pool's concurrency, in-flight and queued requests
 */
import express, { type Request, type Router } from 'express';
import { AttemptLog, type AttemptFilter } from './attempt-log.js';
import { faultRuleSchema } from './config.js';
import { FaultState } from './faults.js';
import { farmErrors } from './openai-wire.js';

export interface PoolStatus {
  name: string;
  models: string[];
  concurrency: number;
  in_flight: number;
  queued: number;
}

export interface FarmState {
  log: AttemptLog;
  faults: FaultState;
  /** Pool name → a live view of its load (each pool registers itself). */
  pools: Map<string, () => PoolStatus>;
}

export const CONTROL_PREFIXES = ['/farm', '/_farm'];

const queryString = (req: Request, key: string): string | undefined => {
  const v = req.query[key];
  return typeof v === 'string' ? v : undefined;
};

export function createControlRouter(state: FarmState, maxBodyBytes: number): Router {
  const router = express.Router();
  router.get('/log', (req, res) => {
    const filter: AttemptFilter = {};
    for (const key of ['request_id', 'pool', 'model'] as const) {
      const v = queryString(req, key);
      if (v !== undefined) filter[key] = v;
    }
    res.json({ attempts: state.log.query(filter) });
  });
  router.post('/reset', (_req, res) => {
    state.faults.reset();
    state.log.clear();
    res.json({ ok: true });
  });
  router.get('/faults', (_req, res) => {
    res.json({ faults: state.faults.runtimeRules() });
  });
  router.post('/faults', express.json({ limit: maxBodyBytes, type: () => true }), (req, res) => {
    const parsed = faultRuleSchema.safeParse(req.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw farmErrors.invalidRequest(`invalid fault: ${issue?.path.join('.') || '(body)'}: ${issue?.message}`, issue?.path.join('.') || null);
    }
    const problem = state.faults.scopeProblem(parsed.data);
    if (problem) throw farmErrors.invalidRequest(`invalid fault: ${problem}`, problem.includes('pool') ? 'pool' : 'model');
    state.faults.addRuntime(parsed.data);
    res.json({ faults: state.faults.runtimeRules() });
  });
  router.get('/pools', (_req, res) => {
    res.json({ pools: [...state.pools.values()].map((status) => status()) });
  });
  router.delete('/faults', (_req, res) => {
    state.faults.clearRuntime();
    res.json({ faults: [] });
  });
  return router;
}
