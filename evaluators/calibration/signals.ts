/**
 * The evaluators a dataset supports for one model, scored on the calibration split, and the one
 * calibration uses: the best AUROC against "this answer was good enough". Trained heads are scored
 * with their out-of-fold predictions (manifest.oof); the rule-based evaluators fit nothing, so
 * their scores are out-of-sample by construction.
 */
import type { DatasetRow } from '../../common/dataset.js';
import { evaluationInputOf, goodEnough } from '../dataset-adapter.js';
import { createEvaluator } from '../index.js';
import type { BaseEvaluatorSpec, EvaluatorSpec } from '../spec.js';
import { auroc } from '../train/stats.js';
import type { Manifest } from '../train/train.js';

export interface Signal {
  spec: EvaluatorSpec;
  /** Confidence per row (NaN: the model has no answer for the row, so the step fails and escalates). */
  conf: Float64Array;
  /** AUROC against "good enough" on the rows with a label (0.5 when one class is missing). */
  auroc: number;
}

/** Picked first on AUROC ties: fewer moving parts. */
const SIMPLICITY: EvaluatorSpec['type'][] = ['validators', 'logprob', 'arithmetic', 'answer-model', 'min'];
const TIE = 0.005;

export async function signalsFor(
  rows: DatasetRow[],
  model: string,
  best: string,
  has: Uint8Array,
  manifest: Manifest | null,
  allowed: (t: EvaluatorSpec['type']) => boolean,
): Promise<Signal[]> {
  const labels = rows.map((r) => goodEnough(r, model, best));
  const scored = (spec: EvaluatorSpec, conf: Float64Array): Signal => {
    const idx = labels.flatMap((l, i) => (l === null || Number.isNaN(conf[i]!) ? [] : [i]));
    const a = auroc(
      idx.map((i) => conf[i]!),
      idx.map((i) => labels[i]!),
    );
    return { spec, conf, auroc: a ?? 0.5 };
  };
  const computed = async (spec: EvaluatorSpec, oof?: Record<string, number>) => {
    const ev = await createEvaluator(spec);
    const conf = new Float64Array(rows.length).fill(NaN);
    for (let i = 0; i < rows.length; i++) {
      if (!has[i]) continue;
      conf[i] = oof?.[rows[i]!.id] ?? (await ev.evaluate(evaluationInputOf(rows[i]!, model, 0))).confidence;
    }
    return scored(spec, conf);
  };
  const out: Signal[] = [];
  const answerFile = manifest?.answer_models[model];
  if (answerFile && allowed('answer-model')) out.push(await computed({ type: 'answer-model', model_file: answerFile }, manifest!.oof.answer[model] ?? {}));
  if (rows.filter((r) => r.models[model]?.response).length > rows.length / 2) {
    if (allowed('arithmetic')) out.push(await computed({ type: 'arithmetic', when_unchecked: 0.5 }));
    if (allowed('validators')) out.push(await computed({ type: 'validators' }));
  }
  if (allowed('logprob') && rows.some((r) => r.models[model]?.logprob != null)) out.push(await computed({ type: 'logprob', when_absent: 0.5 }));
  // Validators as a hard gate on the best graded signal, when they ever fail.
  const gate = out.find((s) => s.spec.type === 'validators');
  const graded = pickSignal(out.filter((s) => s !== gate));
  if (gate && graded && allowed('min') && gate.conf.some((v) => v === 0)) {
    const conf = Float64Array.from(gate.conf, (v, i) => Math.min(v, graded.conf[i]!));
    out.push(scored({ type: 'min', of: [gate.spec as BaseEvaluatorSpec, graded.spec as BaseEvaluatorSpec] }, conf));
  }
  return out;
}

/** The signal with the best AUROC; within TIE of it, the simplest. Null when there is none. */
export function pickSignal(signals: Signal[]): Signal | null {
  if (!signals.length) return null;
  const top = Math.max(...signals.map((s) => s.auroc));
  const near = signals.filter((s) => s.auroc >= top - TIE);
  near.sort((a, b) => SIMPLICITY.indexOf(a.spec.type) - SIMPLICITY.indexOf(b.spec.type));
  return near[0]!;
}
