/**
 * Evaluator specs: which evaluator a policy step uses, as written in policy files (snake_case).
 * The workflow's config schema embeds `evaluatorSpecSchema`; `createEvaluator` (index.ts) builds
 * the evaluator from a parsed spec. Every evaluator returns a confidence in [0, 1]; the step
 * accepts the answer when confidence >= the step's threshold.
 */
import { z } from 'zod';

/** Validator checks; `validators` runs all of them unless `checks` names a subset. */
export const validatorCheckSchema = z.enum(['json', 'refusal', 'truncation', 'empty']);
export type ValidatorCheck = z.infer<typeof validatorCheckSchema>;

const unit = z.number().min(0).max(1);

const noneSpec = z.object({ type: z.literal('none') }).strict();

const logprobSpec = z
  .object({
    type: z.literal('logprob'),
    /**
     * Confidence reported when the answer carries no token logprobs (the provider did not return
     * them). Default 0.5: a neutral signal, so a threshold above 0.5 escalates and one at or
     * below accepts; the reasons say `logprobs-absent` either way.
     */
    when_absent: unit.default(0.5),
  })
  .strict();

const validatorsSpec = z
  .object({
    type: z.literal('validators'),
    /** Checks to run (default: all). Confidence is 1 when all pass, 0 when any fails: a hard gate. */
    checks: z.array(validatorCheckSchema).min(1).optional(),
  })
  .strict();

const arithmeticSpec = z
  .object({
    type: z.literal('arithmetic'),
    /** Confidence when the answer shows no arithmetic to re-check. */
    when_unchecked: unit.default(0.5),
  })
  .strict();

const answerModelSpec = z
  .object({
    type: z.literal('answer-model'),
    /** ONNX head written by `npm run train`; relative paths resolve against the repository root. */
    model_file: z.string().min(1),
  })
  .strict();

const selfConsistencySpec = z
  .object({
    type: z.literal('self-consistency'),
    /** k: total answers compared (the answer plus k-1 extra samples the workflow generates). */
    samples: z.number().int().min(2).max(16),
  })
  .strict();

const judgeSpec = z
  .object({
    type: z.literal('judge'),
    /** Judge model name (a registry model); its cost counts in the request's cost. */
    model: z.string().min(1),
  })
  .strict();

/** Every evaluator except the combinator. */
export const baseEvaluatorSpecSchema = z.discriminatedUnion('type', [
  noneSpec,
  logprobSpec,
  validatorsSpec,
  arithmeticSpec,
  answerModelSpec,
  selfConsistencySpec,
  judgeSpec,
]);
export type BaseEvaluatorSpec = z.infer<typeof baseEvaluatorSpecSchema>;

/**
 * `min`: the lowest confidence of its members (reasons from all). Putting `validators` in the list
 * makes them a hard gate on any evaluator (a failed check gives 0; passing gives 1, which leaves
 * the other member's confidence unchanged). One level only, to keep policies readable.
 */
const minSpec = z
  .object({
    type: z.literal('min'),
    of: z.array(baseEvaluatorSpecSchema).min(1),
  })
  .strict();

export const evaluatorSpecSchema = z.discriminatedUnion('type', [
  noneSpec,
  logprobSpec,
  validatorsSpec,
  arithmeticSpec,
  answerModelSpec,
  selfConsistencySpec,
  judgeSpec,
  minSpec,
]);
export type EvaluatorSpec = z.infer<typeof evaluatorSpecSchema>;
/** What a policy file may write before defaults are applied. */
export type EvaluatorSpecInput = z.input<typeof evaluatorSpecSchema>;

/** Extra generations the workflow must make for a step with this evaluator. */
export function extraSamplesNeeded(spec: EvaluatorSpec): number {
  if (spec.type === 'self-consistency') return spec.samples - 1;
  if (spec.type === 'min') return Math.max(0, ...spec.of.map(extraSamplesNeeded));
  return 0;
}

/** Judge model the workflow must call for a step with this evaluator, if any. */
export function judgeModelOf(spec: EvaluatorSpec): string | null {
  if (spec.type === 'judge') return spec.model;
  if (spec.type === 'min') return spec.of.map(judgeModelOf).find((m) => m !== null) ?? null;
  return null;
}

/** True when scoring with this evaluator loads a model file (an ONNX head): pool workers do not. */
export function usesModelFile(spec: EvaluatorSpec): boolean {
  return spec.type === 'answer-model' || (spec.type === 'min' && spec.of.some((s) => s.type === 'answer-model'));
}
