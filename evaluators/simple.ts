/**
 * Small evaluators that need no model files: none, token-logprob confidence, self-consistency,
 * and the LLM judge's verdict reader.
 */
import type { Evaluation, EvaluationInput, Evaluator } from './types.js';
import { extractFinalAnswer } from './text.js';
import { parseJudgeVerdict } from './judge-prompt.js';

export const noneEvaluator: Evaluator = {
  name: 'none',
  evaluate: () => ({ confidence: 1, reasons: ['none: always accept'] }),
};

/** exp(mean token logprob): the geometric-mean probability the model gave its own tokens. */
export function createLogprobEvaluator(opts: { whenAbsent: number }): Evaluator {
  return {
    name: 'logprob',
    evaluate(input: EvaluationInput): Evaluation {
      const lps = (input.logprobs ?? []).map((t) => t.logprob).filter((v) => Number.isFinite(v));
      if (lps.length === 0) return { confidence: opts.whenAbsent, reasons: ['logprob: logprobs-absent (neutral signal)'] };
      const mean = lps.reduce((a, b) => a + b, 0) / lps.length;
      const confidence = Math.min(1, Math.max(0, Math.exp(mean)));
      return { confidence, reasons: [`logprob: mean ${mean.toFixed(3)} over ${lps.length} tokens`] };
    },
  };
}

/**
 * Share of the k answers (the answer plus the workflow's extra samples) whose final answer agrees
 * with the answer's own. With fewer samples than asked, it uses what it has (and says so).
 */
export function createSelfConsistencyEvaluator(opts: { samples: number }): Evaluator {
  return {
    name: 'self-consistency',
    evaluate(input: EvaluationInput): Evaluation {
      // The workflow may pass the step's own answer as samples[0]; compare only the extra ones.
      const samples = input.samples?.[0] === input.answer ? input.samples.slice(1) : (input.samples ?? []);
      if (samples.length === 0) return { confidence: 0.5, reasons: ['self-consistency: no extra samples (neutral signal)'] };
      const mine = extractFinalAnswer(input.answer)?.value ?? null;
      if (mine === null) return { confidence: 0, reasons: ['self-consistency: answer has no final answer'] };
      const agree = samples.filter((s) => extractFinalAnswer(s)?.value === mine).length;
      const confidence = (agree + 1) / (samples.length + 1);
      const reasons = [`self-consistency: ${agree + 1}/${samples.length + 1} answers agree`];
      if (samples.length + 1 < opts.samples) reasons.push(`self-consistency: only ${samples.length + 1} of ${opts.samples} samples`);
      return { confidence, reasons };
    },
  };
}

/** Reads the judge's verdict (the workflow calls the judge model and passes its raw text). */
export function createJudgeEvaluator(opts: { model: string }): Evaluator {
  return {
    name: 'judge',
    evaluate(input: EvaluationInput): Evaluation {
      if (input.judgeVerdict === undefined) return { confidence: 0, reasons: [`judge: no verdict from ${opts.model}`] };
      const score = parseJudgeVerdict(input.judgeVerdict);
      if (score === null) return { confidence: 0, reasons: [`judge: unreadable verdict from ${opts.model}`] };
      return { confidence: score, reasons: [`judge: ${opts.model} rated ${(1 + score * 9).toFixed(0)}/10`] };
    },
  };
}

/** The lowest confidence of its members; reasons from all of them. */
export function createMinEvaluator(members: Evaluator[]): Evaluator {
  return {
    name: `min(${members.map((m) => m.name).join(',')})`,
    async evaluate(input: EvaluationInput): Promise<Evaluation> {
      const results = await Promise.all(members.map((m) => m.evaluate(input)));
      return {
        confidence: Math.min(...results.map((r) => r.confidence)),
        reasons: results.flatMap((r) => r.reasons),
      };
    },
  };
}
