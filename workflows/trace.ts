/** Trace records and the final result, shared by the cascade's steps and its model calls. */
import type { AttemptRecord, CascadeResult, CascadeTrace, DeploymentRef, GenerateOutput, ModelInfo } from '../common/types.js';
import { ErrorType } from '../common/errors.js';

export const SKIP_ERRORS: Record<string, string> = {
  context_length: ErrorType.ContextLengthExceeded,
  deadline: ErrorType.DeadlineExceeded,
  budget: ErrorType.BudgetExceeded,
};

/** The trace record of an attempt that gave no answer: nothing is billed for it. */
export function noAnswer(
  step: number,
  model: string,
  deployment: DeploymentRef | null,
  error: string,
  detail: string,
  measured: Pick<AttemptRecord, 'latency_ms' | 'retries'> = { latency_ms: null },
): AttemptRecord {
  return {
    step,
    model,
    pool: deployment?.pool ?? null,
    deployment: deployment?.id ?? null,
    confidence: null,
    accepted: false,
    error,
    detail,
    cost_usd: 0,
    ...measured,
  };
}

export function finish(trace: CascadeTrace, step: number, model: ModelInfo, output: GenerateOutput, requestHash: string): CascadeResult {
  trace.final_step = step;
  trace.registry_model = model.name;
  return {
    requestHash,
    content: output.content,
    finishReason: output.finishReason,
    // What actually answered: a fallback deployment may serve another upstream model.
    model: output.upstreamModel || model.name,
    usage: output.usage,
    logprobs: output.logprobs,
    cascade: trace,
  };
}
