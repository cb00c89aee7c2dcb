/**
 * Assistant-prefix continuation in the farm, as real servers offer it (common/continuation.ts):
 * a request whose last message is the assistant's partial answer, marked vLLM-style
 * (`continue_final_message: true, add_generation_prompt: false`) or DeepSeek/Mistral-style
 * (`prefix: true` on that message), is answered with only the rest of the answer: the recorded
 * answer's remainder when the recording starts with the prefix, else a synthetic continuation.
 */
import { estimateTokens } from '../common/dataset.js';
import { seededRandom } from '../common/random.js';
import type { GeneratedAnswer } from './backends/types.js';
import { simulatedWords } from './backends/synthetic.js';
import { farmErrors } from './openai-wire.js';
import { hash32, splitPieces } from './tokens.js';

export const SIMULATED_CONTINUATION = ' [simulated continuation]';

export interface ContinuationRequest {
  style: 'vllm' | 'prefix';
  /** The partial answer to continue (the last message's text). */
  prefix: string;
}

/** What the farm logs of a continuation. */
export interface ContinuationRecord {
  style: ContinuationRequest['style'];
  prefix_chars: number;
  /** The recorded answer started with the prefix (false: a synthetic continuation). */
  matched: boolean;
}

interface ChatShape {
  messages: { role: string; content?: unknown; prefix?: boolean | null | undefined }[];
  continue_final_message?: boolean | null | undefined;
  add_generation_prompt?: boolean | null | undefined;
}

/**
 * The continuation a request asks for, or null. Invalid combinations are 400s, as vLLM and
 * DeepSeek answer them: a flag without an assistant message last, vLLM's flag together with a
 * generation prompt, `prefix` on a message that is not the last.
 */
export function continuationOf(chat: ChatShape, lastText: string): ContinuationRequest | null {
  const last = chat.messages[chat.messages.length - 1];
  const prefixAt = chat.messages.findIndex((m) => m.prefix === true);
  if (prefixAt >= 0 && (prefixAt !== chat.messages.length - 1 || last?.role !== 'assistant'))
    throw farmErrors.invalidRequest('prefix: true is only allowed on the last message, which must be an assistant message', `messages.${prefixAt}.prefix`);
  if (chat.continue_final_message) {
    if (chat.add_generation_prompt !== false)
      throw farmErrors.invalidRequest('continue_final_message and add_generation_prompt cannot both be true', 'add_generation_prompt');
    if (last?.role !== 'assistant') throw farmErrors.invalidRequest('continue_final_message needs an assistant message last', 'messages');
    return { style: 'vllm', prefix: lastText };
  }
  return prefixAt >= 0 ? { style: 'prefix', prefix: lastText } : null;
}

/** The rest of `answer` after `prefix` (matched), or a deterministic synthetic continuation. */
export function continueAnswer(answer: GeneratedAnswer, prefix: string): { answer: GeneratedAnswer; matched: boolean } {
  const inputTokens = answer.inputTokens + estimateTokens(prefix);
  if (answer.text.startsWith(prefix)) {
    const text = answer.text.slice(prefix.length);
    // The recorded pieces after the prefix; a prefix that ends inside a piece keeps that piece's tail.
    let at = 0;
    let i = 0;
    while (i < answer.tokens.length && at + answer.tokens[i]!.text.length <= prefix.length) at += answer.tokens[i++]!.text.length;
    const tokens = answer.tokens.slice(i);
    if (tokens.length > 0 && at < prefix.length) tokens[0] = { ...tokens[0]!, text: tokens[0]!.text.slice(prefix.length - at) };
    const share = answer.tokens.length ? tokens.length / answer.tokens.length : 0;
    const recordedLatencyMs = answer.recordedLatencyMs === undefined ? undefined : answer.recordedLatencyMs * share;
    return {
      answer: {
        ...answer,
        text,
        tokens,
        inputTokens,
        outputTokens: Math.round(answer.outputTokens * share),
        ...(recordedLatencyMs !== undefined && { recordedLatencyMs }),
      },
      matched: true,
    };
  }
  // Another model's text (or one this recording never said): a marked, simulated rest.
  const rand = seededRandom(hash32(`continuation\u0000${prefix}`));
  const n = Math.min(40, Math.max(5, Math.round(splitPieces(prefix).length / 2)));
  const pieces = [SIMULATED_CONTINUATION, ...simulatedWords(rand, n), '.'];
  return {
    answer: {
      text: pieces.join(''),
      tokens: pieces.map((text) => ({ text })),
      inputTokens,
      outputTokens: pieces.length,
      finishReason: 'stop',
      simulated: true,
    },
    matched: false,
  };
}
