/**
 * Views of a recorded dataset (common/dataset.ts) that training, calibration and the routing
 * benchmark share: per-model quality and cost, the "good enough" label, and the EvaluationInput a
 * recorded answer becomes. Works for any number of models and any optional fields.
 */
import { estimateTokens, type DatasetRow, type ModelOutcome, type ModelPrice } from '../common/dataset.js';
import type { EvaluationInput } from './types.js';

/** Quality of one answer: 1/0 for a binary label, the score for a graded one, null if unlabelled. */
export function quality(o: ModelOutcome | undefined): number | null {
  if (!o) return null;
  if (o.correct !== null) return o.correct ? 1 : 0;
  return o.score;
}

export interface ModelSummary {
  name: string;
  /** Mean quality over rows where it is labelled. */
  quality: number;
  /** Mean cost per request (USD). */
  cost: number;
  labelled: number;
}

export interface DatasetView {
  rows: DatasetRow[];
  /** Models cheapest first (by mean cost). */
  models: ModelSummary[];
  /** Highest mean quality (ties: the cheaper); the reference "best single model". */
  best: ModelSummary;
  /** 'binary' when the labels are correct/incorrect, 'graded' for scores. */
  labelKind: 'binary' | 'graded';
  cost(row: DatasetRow, model: string): number;
}

export function viewOf(rows: DatasetRow[], prices: ModelPrice[]): DatasetView {
  if (rows.length === 0) throw new Error('the dataset split has no rows');
  const price = new Map(prices.map((p) => [p.name, p]));
  const cost = (row: DatasetRow, model: string): number => {
    const o = row.models[model];
    if (o?.costUsd != null) return o.costUsd;
    const p = price.get(model);
    const inTok = o?.inputTokens ?? estimateTokens(row.prompt);
    const outTok = o?.outputTokens ?? (o?.response ? estimateTokens(o.response) : 0);
    if (!p) return 0;
    return (inTok * (p.inputUsdPer1M ?? p.outputUsdPer1M ?? 0) + outTok * (p.outputUsdPer1M ?? p.inputUsdPer1M ?? 0)) / 1e6;
  };
  const names = [...new Set(rows.flatMap((r) => Object.keys(r.models)))];
  let binary = 0;
  let graded = 0;
  const models = names.map((name): ModelSummary => {
    let q = 0;
    let n = 0;
    let c = 0;
    for (const r of rows) {
      const o = r.models[name];
      if (o?.correct != null) binary++;
      else if (o?.score != null) graded++;
      const v = quality(o);
      if (v !== null) {
        q += v;
        n++;
      }
      c += cost(r, name);
    }
    return { name, quality: n ? q / n : 0, cost: c / rows.length, labelled: n };
  });
  models.sort((a, b) => a.cost - b.cost || a.name.localeCompare(b.name));
  const labelled = models.filter((m) => m.labelled > 0);
  if (labelled.length === 0) throw new Error('no model in the dataset has a correct/score label');
  const best = labelled.reduce((a, m) => (m.quality > a.quality + 1e-12 ? m : a));
  return { rows, models, best, labelKind: binary >= graded ? 'binary' : 'graded', cost };
}

/**
 * Is this model's answer good enough? Binary labels: correct. Graded labels: at least as good as
 * the best single model's answer to the same prompt (what escalating would buy); null if unknown.
 */
export function goodEnough(row: DatasetRow, model: string, best: string): boolean | null {
  const o = row.models[model];
  if (!o) return null;
  if (o.correct !== null) return o.correct;
  if (o.score === null) return null;
  const ref = row.models[best]?.score;
  return ref == null ? null : o.score >= ref;
}

/** The EvaluationInput a recorded answer becomes (the recorded logprob is taken as the mean token logprob). */
export function evaluationInputOf(row: DatasetRow, model: string, step: number): EvaluationInput {
  const o = row.models[model];
  return {
    messages: [{ role: 'user', content: row.prompt }],
    answer: o?.response ?? '',
    model,
    step,
    finishReason: null,
    logprobs: o?.logprob != null ? [{ token: '', logprob: o.logprob }] : null,
  };
}
