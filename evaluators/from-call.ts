/**
 * The one mapping from the cascade's evaluate call (workflows/cascade-core.ts) to an
 * EvaluationInput. The `evaluate` activity and the offline routing benchmark both use it, so a
 * live request and its replay score exactly the same input.
 */
import type { ChatParams, GenerateOutput } from '../common/types.js';
import type { EvaluationInput } from './types.js';

export interface EvaluateCallLike {
  step: number;
  params: ChatParams;
  answer: GenerateOutput;
  model: string;
  samples?: string[];
  judgeVerdict?: string;
}

export function evaluationInputFromCall(call: EvaluateCallLike): EvaluationInput {
  const rf = call.params.response_format;
  return {
    messages: call.params.messages,
    answer: call.answer.content,
    model: call.model,
    step: call.step,
    finishReason: call.answer.finishReason,
    logprobs: call.answer.logprobs,
    responseFormat: !rf ? null : rf.type === 'json_schema' ? { type: 'json_schema', schema: rf.json_schema.schema } : { type: rf.type },
    ...(call.samples ? { samples: call.samples } : {}),
    ...(call.judgeVerdict !== undefined ? { judgeVerdict: call.judgeVerdict } : {}),
  };
}
