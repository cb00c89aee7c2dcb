/**
 * Synthetic backend: deterministic placeholder text for prompts with no recording, and for
 * document and load tests. Every answer starts with "[simulated] " and is flagged `simulated`, so
 * it can never pass for a real model's answer. Its confidence signal (exp of the mean token
 * logprob) is `high` for a configured share of prompts and `low` for the rest, chosen from a hash
 * of (model, prompt), so a fixed share of answers gets escalated by a cascade.
 *
 * Asked for `response_format: json_schema`, a model with `json_schema_share` > 0 answers that
 * share of prompts with JSON built from the schema (no prefix: it must parse; the answer is still
 * flagged `simulated`, so the `x-farm-simulated` header says so), the rest with prose.
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

/** `n` stream pieces of simulated words (` word`), drawn from `rand`. */
export function simulatedWords(rand: () => number, n: number): string[] {
  return Array.from({ length: n }, () => ` ${WORDS[Math.floor(rand() * WORDS.length)]!}`);
}

/** Confidence in (0, 1] a synthetic model shows for a prompt. */
function syntheticConfidence(settings: SyntheticSettings, model: string, prompt: string): number {
  const u = seededRandom(hash32(`confidence\u0000${model}\u0000${prompt}`))();
  return u < settings.confidence.high_share ? settings.confidence.high : settings.confidence.low;
}

/**
 * Longest simulated answer to a short prompt: a greeting gets a sentence, not a page, so its
 * simulated generation time (length ÷ tokens_per_s) stays short too. Longer prompts get the
 * configured range.
 */
const shortPromptCap = (prompt: string) => 16 + 4 * estimateTokens(prompt);

export function createSyntheticBackend(models: Record<string, SyntheticSettings>): Backend {
  function answer(req: GenerateRequest): GeneratedAnswer | null {
    const settings = models[req.model];
    if (!settings) return null;
    const prompt = lastUserMessage(req.messages);
    const seed = hash32(`${req.model}\u0000${prompt}`);
    const rand = seededRandom(seed);
    const range = settings.output_tokens;
    const configured = typeof range === 'number' ? range : range.min + Math.floor(rand() * (range.max - range.min + 1));
    // At least the prefix and one word, so every answer starts with "[simulated] ".
    const length = Math.max(2, req.outputTokens ?? Math.min(configured, shortPromptCap(prompt)));
    const pieces = [SIMULATED_PREFIX.trimEnd()];
    pieces.push(...simulatedWords(rand, length - 1));
    const json = req.jsonSchema !== undefined && seededRandom(hash32(`json\u0000${req.model}\u0000${prompt}`))() < settings.json_schema_share;
    if (json) {
      const text = JSON.stringify(instanceOf(req.jsonSchema, rand));
      pieces.length = 0;
      // Stream it in pieces of a few characters, like tokens.
      for (let i = 0; i < text.length; i += 4) pieces.push(text.slice(i, i + 4));
    }
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
    return json ? generated : capAnswer(generated, req.maxTokens);
  }

  const names = Object.keys(models);
  return {
    kind: 'synthetic',
    models: () => names,
    generate: (req) => Promise.resolve(answer(req)),
  };
}

type Schema = { type?: string | string[]; properties?: Record<string, unknown>; items?: unknown; enum?: unknown[]; const?: unknown };

/** A deterministic value that matches the common subset of JSON Schema (types, properties, items, enum, const). */
function instanceOf(schema: unknown, rand: () => number, depth = 0): unknown {
  const s = (schema && typeof schema === 'object' ? schema : {}) as Schema;
  if ('const' in s) return s.const;
  if (s.enum?.length) return s.enum[Math.floor(rand() * s.enum.length)];
  const type = Array.isArray(s.type) ? s.type[0] : (s.type ?? (s.properties ? 'object' : 'string'));
  switch (type) {
    case 'object':
      return Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, v]) => [k, instanceOf(v, rand, depth + 1)]));
    case 'array':
      return depth > 4 ? [] : Array.from({ length: 1 + Math.floor(rand() * 3) }, () => instanceOf(s.items, rand, depth + 1));
    case 'integer':
      return Math.floor(rand() * 100);
    case 'number':
      return Math.round(rand() * 10_000) / 100;
    case 'boolean':
      return rand() < 0.5;
    case 'null':
      return null;
    default:
      return WORDS[Math.floor(rand() * WORDS.length)]!;
  }
}
