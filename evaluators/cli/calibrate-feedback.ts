/**
 * `npm run calibrate -- --from-feedback --target T [--policy P]`: the labelled production requests
 * of each configured policy (their labels from the policy's feedback store, their traces from the
 * usage ledger) become calibration rows; the thresholds are re-fitted with the same bootstrap
 * bound as a dataset calibration (evaluators/calibration/feedback.ts) and, when the promise holds
 * and a threshold moved, the policy is written with them.
 */
import { writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import YAML from 'yaml';
import { loadConfig } from '../../config/load.js';
import { connectClient } from '../../workers/connection.js';
import { Ledger } from '../../server/ledger.js';
import { FeedbackStore } from '../../server/feedback.js';
import { fitFromFeedback, type LabelledRequest } from '../calibration/feedback.js';
import { REPO_ROOT } from '../head.js';
import type { CascadeTrace } from '../../common/types.js';

/** The returned answer's step and the evaluator's confidence in it, from a trace. */
export function labelledRow(trace: CascadeTrace, score: number): LabelledRequest | null {
  if (trace.final_step === null) return null;
  const answer = trace.attempts.find((a) => a.step === trace.final_step && a.accepted);
  return { finalStep: trace.final_step, confidence: answer?.confidence ?? null, score };
}

export async function calibrateFromFeedback(opts: { target: number; confidence: number; policy?: string; out?: string }): Promise<void> {
  const config = loadConfig();
  const client = await connectClient(config);
  const ledger = new Ledger(client, config);
  const store = new FeedbackStore(client, config.raw.temporal.task_queue);
  const policies = [...config.policies.values()].filter((p) => (opts.policy ? p.name === opts.policy : p.steps.length > 1));
  if (policies.length === 0) throw new Error(`calibrate: no policy ${opts.policy ?? 'with more than one step'} in ${config.file}`);
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  for (const policy of policies) {
    const labels = await store.all(policy.name);
    const rows: LabelledRequest[] = [];
    for (const f of labels) {
      const record = await ledger.record(f.workflow_id).catch(() => null);
      const row = record && !('running' in record) && record.cascade ? labelledRow(record.cascade, f.score) : null;
      if (row) rows.push(row);
    }
    const fit = fitFromFeedback(
      rows,
      policy.steps.map((s) => s.threshold),
      { target: opts.target, confidence: opts.confidence },
    );
    console.log(`calibrate: ${policy.name}: ${labels.length} labels, ${rows.length} with a trace`);
    for (const t of fit.thresholds) console.log(`calibrate: ${policy.name}: step ${t.step} threshold ${t.current} -> ${t.fitted}`);
    if (fit.share)
      console.log(
        `calibrate: ${policy.name}: quality share ${pct(fit.share.estimate)} of the top step (${pct(opts.confidence)} interval ${pct(fit.share.interval[0])}–${pct(fit.share.interval[1])}, one-sided bound ${pct(fit.share.lower)})`,
      );
    if (fit.current)
      console.log(
        `calibrate: ${policy.name}: the current thresholds reach ${pct(fit.current.share.estimate)} (bound ${pct(fit.current.share.lower)}): ` +
          (Number.isFinite(fit.current.needed)
            ? `too little data to keep them, about ${fit.current.needed} labelled requests would be needed`
            : `below the target on these labels`),
      );
    if (!fit.promised) {
      console.log(`calibrate: ${policy.name}: NO PROMISE: ${fit.problem}`);
      continue;
    }
    console.log(`calibrate: ${policy.name}: PROMISE: quality share >= ${pct(opts.target)} with confidence ${pct(opts.confidence)}`);
    if (fit.thresholds.every((t) => t.fitted === t.current)) continue;
    const out = opts.out ?? join(REPO_ROOT, 'evaluators/policies', `${policy.name}.feedback.yaml`);
    const steps = policy.steps.map((s, i) => ({ ...s, threshold: fit.thresholds[i]?.fitted ?? s.threshold }));
    await writeFile(
      out,
      `# Written by: npm run calibrate -- --from-feedback --target ${opts.target} (${rows.length} labelled requests)\n${YAML.stringify({ ...policy, name: `${policy.name}-feedback`, steps })}`,
    );
    console.log(`calibrate: wrote ${relative(process.cwd(), out)}`);
  }
  await client.connection.close();
}
