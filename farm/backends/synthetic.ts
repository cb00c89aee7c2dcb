/**
 * Synthetic backend: deterministic placeholder text for prompts with no recording, and for
 * document and load tests. Every answer starts with "[simulated] " and is flagged `simulated`, so
 * it can never pass for a real model's answer. Its confidence signal (exp of the mean token
 * logprob) is `high` for a configured share of prompts and `low` for the rest, chosen from a hash
 * of (model, prompt), so a fixed share of answers gets escalated by a cascade.
 */
import { estimateTokens } from '../../common/dataset.js';
import type { SyntheticSettings } from '../config.js';
import { seededRandom } from '../../common/random.js';
import { capAnswer, hash32, lastUserMessage, withLogprobs } from '../tokens.js';
import type { Backend, GenerateRequest, GeneratedAnswer } from './types.js';

export const SIMULATED_PREFIX = '[simulated] ';

const WORDS = (
  'the model farm simulated answer text placeholder value result step reason check total number ' +
  'data point example case first second then so because therefore which we find that is of and to'
).split(' ');

/** Confidence in (0, 1] a synthetic model shows for a prompt. */
function syntheticConfidence(settings: SyntheticSettings, model: string, prompt: string): number {
  const u = seededRandom(hash32(`confidence\u0000${model}\u0000${prompt}`))();
  return u < settings.confidence.high_share ? settings.confidence.high : settings.confidence.low;
}

export function createSyntheticBackend(models: Record<string, SyntheticSettings>): Backend {
  function answer(req: GenerateRequest): GeneratedAnswer | null {
    const settings = models[req.model];
    if (!settings) return null;
    const prompt = lastUserMessage(req.messages);
    const seed = hash32(`${req.model}\u0000${prompt}`);
    const rand = seededRandom(seed);
    const range = settings.output_tokens;
    // At least the prefix and one word, so every answer starts with "[simulated] ".
    const length = Math.max(2, req.outputTokens ?? (typeof range === 'number' ? range : range.min + Math.floor(rand() * (range.max - range.min + 1))));
    const pieces = [SIMULATED_PREFIX.trimEnd()];
    for (let i = 1; i < length; i++) pieces.push(` ${WORDS[Math.floor(rand() * WORDS.length)]!}`);
    const confidence = Math.max(1e-6, syntheticConfidence(settings, req.model, prompt));
    const tokens = withLogprobs(pieces, Math.log(confidence), seed, req.wantLogprobs ? req.topLogprobs : 0);
    const generated: GeneratedAnswer = {
      text: pieces.join(''),
      tokens,
      inputTokens: req.messages.reduce((n, m) => n + estimateTokens(m.content), 0),
      outputTokens: pieces.length,
      finishReason: 'stop',
      simulated: true,
    };
    return capAnswer(generated, req.maxTokens);
  }

  const names = Object.keys(models);
  return {
    kind: 'synthetic',
    models: () => names,
    generate: (req) => Promise.resolve(answer(req)),
  };
}
