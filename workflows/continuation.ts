/**
 * Assistant-prefix continuation, the pure part (common/continuation.ts for the idea): which
 * deployment continues a live answer whose stream broke after text was sent, and how the broken
 * call and its continuation become one answer. Deterministic; unit-tested in test/unit/continuation.test.ts.
 */
import type { PartialAnswer } from '../common/continuation.js';
import type { DeploymentRef, GenerateOutput, Usage } from '../common/types.js';

/** Live text produced by calls that broke, which the next deployment may continue. */
export interface SentText extends PartialAnswer {
  /** The deployment whose call broke last. */
  deployment: string;
}

export const addUsage = (a: Usage, b: Usage): Usage => ({
  prompt_tokens: a.prompt_tokens + b.prompt_tokens,
  completion_tokens: a.completion_tokens + b.completion_tokens,
  total_tokens: a.total_tokens + b.total_tokens,
});

/**
 * After a live stream broke, the deployments that can continue it go first (in their order): any
 * other one would regenerate from scratch, and a different text ends the client's stream.
 */
export function preferContinuing(deployments: readonly DeploymentRef[]): DeploymentRef[] {
  return [...deployments.filter((d) => d.continuation), ...deployments.filter((d) => !d.continuation)];
}

/**
 * What the client has been sent after a call on `deployment` broke having produced `partial`:
 * that call continued `continued` (the text before it) or regenerated from scratch.
 */
export function textSent(continued: SentText | null, partial: PartialAnswer, deployment: string): SentText {
  return continued
    ? { text: continued.text + partial.text, usage: addUsage(continued.usage, partial.usage), deployment }
    : { text: partial.text, usage: partial.usage, deployment };
}

/**
 * The answer a continuation completes: the text sent before plus what the continuing call
 * produced, usage of both (what the request paid for); `continued` keeps the earlier part apart,
 * since its cost is already in the trace with the call that broke.
 */
export function joinContinuation(sent: SentText, rest: GenerateOutput): GenerateOutput {
  // An evaluation made with the call judged only the rest: it does not travel with the whole.
  const { evaluation: _judgedRestOnly, ...output } = rest;
  return {
    ...output,
    content: sent.text + rest.content,
    usage: addUsage(sent.usage, rest.usage),
    // The broken call's token logprobs are gone; live answers carry none anyway.
    logprobs: null,
    continued: { deployment: sent.deployment, chars: sent.text.length, usage: sent.usage },
  };
}

/** The usage of the call that produced `output` itself (without the text it continued). */
export function ownUsage(output: GenerateOutput): Usage {
  const before = output.continued?.usage;
  if (!before) return output.usage;
  return {
    prompt_tokens: output.usage.prompt_tokens - before.prompt_tokens,
    completion_tokens: output.usage.completion_tokens - before.completion_tokens,
    total_tokens: output.usage.total_tokens - before.total_tokens,
  };
}
