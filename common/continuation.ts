/**
 * Assistant-prefix continuation: a live answer whose stream broke after text was sent continues
 * on another deployment from that text (the partial answer goes upstream as the last assistant
 * message, and the upstream generates only the rest). Pure types and names, imported by workflow
 * code, the pool activity and the farm.
 */
import type { Usage } from './types.js';

/**
 * How an upstream is asked to continue the last assistant message:
 * - `vllm`: `continue_final_message: true, add_generation_prompt: false` in the body (vLLM,
 *   transformers-style servers, llama.cpp's server since it accepts the flag);
 * - `prefix`: `prefix: true` on the last assistant message (DeepSeek's beta endpoint, Mistral);
 * - `none`: the upstream cannot (OpenAI's chat completions, unknown servers).
 */
export const CONTINUATION_STYLES = ['vllm', 'prefix', 'none'] as const;
export type ContinuationStyle = (typeof CONTINUATION_STYLES)[number];

/** What a call that failed after producing text had produced (in the activity failure's details). */
export interface PartialAnswer {
  text: string;
  /** Estimated: the upstream sends no usage for a stream that broke. */
  usage: Usage;
}
