/**
 * Live/offline agreement: the decision records of prompts sent through the real stack must equal
 * the offline replay's for the same prompts (same answering step and model, same accept/reject at
 * every step, same confidences up to float noise).
 */
import type { DecisionRecord } from './replay.js';

export interface Mismatch {
  id: string;
  field: string;
  offline: unknown;
  live: unknown;
}

export interface Agreement {
  compared: number;
  agreeing: number;
  missing: string[];
  mismatches: Mismatch[];
}

export function compareDecisions(offline: DecisionRecord[], live: DecisionRecord[], tolerance = 1e-6): Agreement {
  const byId = new Map(offline.map((d) => [d.id, d]));
  const mismatches: Mismatch[] = [];
  const missing: string[] = [];
  let agreeing = 0;
  for (const l of live) {
    const o = byId.get(l.id);
    if (!o) {
      missing.push(l.id);
      continue;
    }
    const before = mismatches.length;
    const check = (field: string, a: unknown, b: unknown) => {
      if (a !== b) mismatches.push({ id: l.id, field, offline: a, live: b });
    };
    check('final_model', o.final_model, l.final_model);
    check('final_step', o.final_step, l.final_step);
    const stepsO = o.steps.filter((s) => s.confidence !== null || s.outcome?.startsWith('skipped'));
    const stepsL = l.steps.filter((s) => s.confidence !== null || s.outcome?.startsWith('skipped'));
    check('evaluated_steps', stepsO.map((s) => s.step).join(','), stepsL.map((s) => s.step).join(','));
    for (const so of stepsO) {
      const sl = stepsL.find((s) => s.step === so.step);
      if (!sl) continue;
      check(`step ${so.step} accepted`, so.accepted, sl.accepted);
      if (so.confidence !== null && sl.confidence !== null && Math.abs(so.confidence - sl.confidence) > tolerance)
        mismatches.push({ id: l.id, field: `step ${so.step} confidence`, offline: so.confidence, live: sl.confidence });
    }
    if (mismatches.length === before) agreeing++;
  }
  return { compared: live.length - missing.length, agreeing, missing, mismatches };
}
