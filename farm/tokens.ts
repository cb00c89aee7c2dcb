/**
 * Token-level helpers shared by the backends: splitting answer text into stream pieces,
 * deterministic per-token logprobs with a given mean, and max_tokens truncation.
 * Everything here is deterministic in its inputs (seeded), so replays are reproducible.
 */
import type { ChatMessage, GeneratedAnswer, GeneratedToken } from './backends/types.js';
import { normalisePrompt } from '../common/dataset.js';
import { seededRandom } from '../common/random.js';

/** 32-bit FNV-1a: a cheap, stable hash for seeds and bucket choices. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The last user message, whitespace-normalised: the replay key and the synthetic seed. */
export function lastUserMessage(messages: readonly ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role === 'user') return normalisePrompt(m.content);
  }
  return '';
}

/** Splits text into stream pieces (a word with its leading whitespace); the pieces concatenate to the text. */
export function splitPieces(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? (text ? [text] : []);
}

const ALTERNATIVES = [' the', ' a', ',', ' and', ' of', '.', ' to', ' is'];

/**
 * Assigns per-token logprobs whose mean is exactly `meanLogprob` (<= 0): each token gets
 * mean × w with w > 0 and mean(w) = 1, so every logprob stays <= 0.
 */
export function withLogprobs(pieces: readonly string[], meanLogprob: number, seed: number, topN: number): GeneratedToken[] {
  const rand = seededRandom(seed);
  const weights = pieces.map(() => 0.2 + 1.6 * rand());
  const meanWeight = weights.reduce((s, w) => s + w, 0) / (weights.length || 1);
  return pieces.map((text, i) => {
    const logprob = meanLogprob * (weights[i]! / meanWeight);
    const token: GeneratedToken = { text, logprob };
    if (topN > 0) {
      // The chosen token first, then alternatives sharing the remaining probability mass.
      const rest = Math.max(1e-9, 1 - Math.exp(logprob));
      token.topLogprobs = [{ token: text, logprob }];
      for (let k = 0; k < topN - 1; k++) {
        token.topLogprobs.push({ token: ALTERNATIVES[(i + k) % ALTERNATIVES.length]!, logprob: Math.log(rest * 0.5 ** (k + 1)) });
      }
    }
    return token;
  });
}

/** Caps an answer at `maxTokens` output tokens, keeping a proportional share of its pieces. */
export function capAnswer(answer: GeneratedAnswer, maxTokens: number | undefined): GeneratedAnswer {
  if (maxTokens === undefined || answer.outputTokens <= maxTokens) return answer;
  const keep = Math.max(1, Math.floor((answer.tokens.length * maxTokens) / answer.outputTokens));
  const tokens = answer.tokens.slice(0, keep);
  return { ...answer, tokens, text: tokens.map((t) => t.text).join(''), outputTokens: maxTokens, finishReason: 'length' };
}
