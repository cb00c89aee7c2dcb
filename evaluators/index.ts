/**
 * Builds an evaluator from its spec (spec.ts). The `evaluate` activity, the offline routing
 * benchmark and calibration all go through here, so every path scores answers with the same code.
 */
import { createAnswerModelEvaluator } from './answer-model.js';
import { createArithmeticEvaluator } from './arithmetic.js';
import type { HeadDeps } from './head.js';
import { createJudgeEvaluator, createLogprobEvaluator, createMinEvaluator, createSelfConsistencyEvaluator, noneEvaluator } from './simple.js';
import type { BaseEvaluatorSpec, EvaluatorSpec } from './spec.js';
import type { Evaluator } from './types.js';
import { ALL_CHECKS, createValidatorsEvaluator } from './validators.js';

export type { Evaluation, EvaluationInput, Evaluator, TokenLogprob } from './types.js';
export { evaluatorSpecSchema, extraSamplesNeeded, judgeModelOf, type EvaluatorSpec } from './spec.js';
export { buildJudgeMessages, parseJudgeVerdict } from './judge-prompt.js';
export { loadPrerouter, type Prerouter } from './prerouter.js';

/** modelsDir: base of relative `model_file` paths (default: repository root); encoderDir (default .data/encoder); logger. */
export type EvaluatorDeps = HeadDeps;

function createBase(spec: BaseEvaluatorSpec, deps: EvaluatorDeps): Promise<Evaluator> | Evaluator {
  switch (spec.type) {
    case 'none':
      return noneEvaluator;
    case 'logprob':
      return createLogprobEvaluator({ whenAbsent: spec.when_absent });
    case 'validators':
      return createValidatorsEvaluator(spec.checks ?? ALL_CHECKS);
    case 'arithmetic':
      return createArithmeticEvaluator({ whenUnchecked: spec.when_unchecked });
    case 'answer-model':
      return createAnswerModelEvaluator(spec.model_file, deps);
    case 'self-consistency':
      return createSelfConsistencyEvaluator({ samples: spec.samples });
    case 'judge':
      return createJudgeEvaluator({ model: spec.model });
  }
}

/** Builds the evaluator a spec describes; ONNX sessions are loaded once per model file and shared. */
export async function createEvaluator(spec: EvaluatorSpec, deps: EvaluatorDeps = {}): Promise<Evaluator> {
  if (spec.type === 'min') return createMinEvaluator(await Promise.all(spec.of.map((s) => createBase(s, deps))));
  return createBase(spec, deps);
}
