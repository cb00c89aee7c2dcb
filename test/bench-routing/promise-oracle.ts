/**
 * The true quality share of a calibrated policy on synthetic rows (synthetic.ts, `signal: 'logprob'`),
 * computed directly from the rows: the oracle the promise is checked against. Independent of the
 * search's own simulation on purpose.
 */
import type { PolicyFile } from '../../evaluators/calibrate.js';
import type { SyntheticRow } from '../evaluators/synthetic.js';

export function trueShare(policy: PolicyFile, rows: SyntheticRow[], reference: string): { share: number; costShare: number } {
  let q = 0;
  let ref = 0;
  let cost = 0;
  let refCost = 0;
  for (const r of rows) {
    ref += r.models[reference]!.correct ? 1 : 0;
    refCost += r.models[reference]!.cost_usd;
    for (const [s, step] of policy.steps.entries()) {
      const o = r.models[step.model]!;
      cost += o.cost_usd;
      const last = s === policy.steps.length - 1;
      const conf = step.evaluator.type === 'logprob' ? Math.exp(o.logprob!) : 1;
      if (last || conf >= step.threshold) {
        q += o.correct ? 1 : 0;
        break;
      }
    }
  }
  return { share: q / ref, costShare: cost / refCost };
}
