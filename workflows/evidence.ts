/**
 * Evidence a step's evaluator needs beyond the answer itself: self-consistency samples, a judge's
 * verdict, token logprobs. Pure decisions plus the calls, made through the cascade's CallModel.
 */
import type { CascadeInput, ChatParams, EvaluatorSpec, GenerateOutput, ModelInfo, PolicyStep } from '../common/types.js';
import { buildJudgeMessages } from '../evaluators/judge-prompt.js';
import type { CallModel } from './cascade-core.js';

/** Extra answers a self-consistency evaluator compares (0 when none), looking inside `min` combinations. */
export function extraSamplesOf(spec: EvaluatorSpec): number {
  if (spec.type === 'self-consistency') return Math.max(1, (spec.samples ?? 3) - 1);
  if (spec.type === 'min' && Array.isArray(spec.of)) return Math.max(0, ...(spec.of as EvaluatorSpec[]).map(extraSamplesOf));
  return 0;
}

/** The judge model a step's evaluator calls, if any, looking inside `min` combinations. */
export function judgeModelOf(spec: EvaluatorSpec): string | null {
  if (spec.type === 'judge') return spec.model ?? null;
  if (spec.type === 'min' && Array.isArray(spec.of)) return (spec.of as EvaluatorSpec[]).map(judgeModelOf).find((m) => m !== null) ?? null;
  return null;
}

/** Extra model calls an evaluator makes besides the step's own answer. */
export function extraCallsOf(spec: EvaluatorSpec): number {
  return extraSamplesOf(spec) + (judgeModelOf(spec) ? 1 : 0);
}

/** A logprob evaluator (also inside `min`) needs token logprobs even when the caller did not ask for them. */
function usesLogprobs(spec: EvaluatorSpec): boolean {
  return spec.type === 'logprob' || (spec.type === 'min' && Array.isArray(spec.of) && (spec.of as EvaluatorSpec[]).some(usesLogprobs));
}

export function withLogprobsIfNeeded(params: ChatParams, spec: EvaluatorSpec): ChatParams {
  return usesLogprobs(spec) && !params.logprobs ? { ...params, logprobs: true } : params;
}

/** Self-consistency samples and judge verdicts: extra model calls made before evaluating. */
export async function gatherEvidence(
  stepSpec: PolicyStep,
  step: number,
  model: ModelInfo,
  params: ChatParams,
  output: GenerateOutput,
  input: CascadeInput,
  callModel: CallModel,
): Promise<{ samples?: string[]; judgeVerdict?: string }> {
  const spec = stepSpec.evaluator;
  const extraSamples = extraSamplesOf(spec);
  const judgeName = judgeModelOf(spec);
  const judge = judgeName ? input.models[judgeName] : undefined;
  const sampleParams: ChatParams = { ...params, temperature: params.temperature && params.temperature > 0 ? params.temperature : 0.7 };
  const judgeParams: ChatParams = { messages: buildJudgeMessages({ messages: params.messages, answer: output.content }), temperature: 0, max_tokens: 16 };
  // The samples and the judge's verdict are independent calls, so all are asked at once: the step
  // waits for the slowest, not their sum. They are used by index, not by arrival, so the
  // evaluation stays deterministic.
  const [samples, verdict] = await Promise.all([
    Promise.all(Array.from({ length: extraSamples }, (_, s) => callModel(step, model, sampleParams, 'sample', `sample-${s + 1}`))),
    judge ? callModel(step, judge, judgeParams, 'judge', 'judge') : null,
  ]);
  return {
    ...(extraSamples > 0 && { samples: [output.content, ...samples.flatMap((r) => (r.ok ? [r.output.content] : []))] }),
    ...(verdict?.ok && { judgeVerdict: verdict.output.content }),
  };
}
