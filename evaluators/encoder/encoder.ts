/**
 * The sentence encoder (all-MiniLM-L6-v2, quantised ONNX) on onnxruntime-node: text → 384-d
 * mean-pooled, L2-normalised embedding. Inputs are cut to `maxTokens` word pieces to bound latency.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import { DEFAULT_ENCODER_DIR, ENCODER_MODEL_FILE, ENCODER_NAME, ENCODER_TOKENIZER_FILE } from './fetch.js';

export const EMBEDDING_DIM = 384;
export const DEFAULT_MAX_TOKENS = 128;
/** Characters kept before tokenising: ~4 chars per word piece, with slack; tokenising megabytes is slow. */
const CHARS_PER_TOKEN_BOUND = 6;

export interface Encoder {
  readonly name: string;
  readonly dim: number;
  /**
   * One embedding per text, same order as `texts`, computed in one batch. The quantised model scales
   * activations per batch, so callers that need reproducible vectors embed one text per call.
   */
  embed(texts: string[]): Promise<Float32Array[]>;
}

export async function loadEncoder(opts: { dir?: string; maxTokens?: number; threads?: number } = {}): Promise<Encoder> {
  const dir = opts.dir ?? DEFAULT_ENCODER_DIR;
  const maxTokens = opts.maxTokens ?? DEFAULT_MAX_TOKENS;
  const [session, tokenizerJson] = await Promise.all([
    ort.InferenceSession.create(join(dir, ENCODER_MODEL_FILE), {
      intraOpNumThreads: opts.threads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    }),
    readFile(join(dir, ENCODER_TOKENIZER_FILE), 'utf8').then((t) => JSON.parse(t) as object),
  ]);
  const tokenizer = new Tokenizer(tokenizerJson, {});
  const wantsTypeIds = session.inputNames.includes('token_type_ids');

  const tokenize = (text: string): number[] => {
    const ids = tokenizer.encode(text.slice(0, maxTokens * CHARS_PER_TOKEN_BOUND)).ids;
    if (ids.length <= maxTokens) return ids;
    // Keep [CLS] … [SEP]: cut the middle of the sequence, not its special tokens.
    return [...ids.slice(0, maxTokens - 1), ids[ids.length - 1]!];
  };

  return {
    name: ENCODER_NAME,
    dim: EMBEDDING_DIM,
    async embed(texts: string[]): Promise<Float32Array[]> {
      if (texts.length === 0) return [];
      const encoded = texts.map(tokenize);
      const len = Math.max(...encoded.map((e) => e.length));
      const n = texts.length;
      const ids = new BigInt64Array(n * len);
      const mask = new BigInt64Array(n * len);
      encoded.forEach((e, i) => {
        e.forEach((id, j) => {
          ids[i * len + j] = BigInt(id);
          mask[i * len + j] = 1n;
        });
      });
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor('int64', ids, [n, len]),
        attention_mask: new ort.Tensor('int64', mask, [n, len]),
      };
      if (wantsTypeIds) feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(n * len), [n, len]);
      const out = await session.run(feeds);
      const hidden = out[session.outputNames[0]!]!.data as Float32Array;
      const dim = hidden.length / (n * len);
      return encoded.map((e, i) => {
        const v = new Float32Array(dim);
        for (let j = 0; j < e.length; j++) {
          const base = (i * len + j) * dim;
          for (let d = 0; d < dim; d++) v[d]! += hidden[base + d]!;
        }
        let norm = 0;
        for (let d = 0; d < dim; d++) norm += v[d]! * v[d]!;
        norm = Math.sqrt(norm) || 1;
        for (let d = 0; d < dim; d++) v[d]! /= norm;
        return v;
      });
    },
  };
}
