/**
 * Trained heads (answer-confidence model and pre-router) at run time: an ONNX file written by
 * `npm run train`, its sidecar `<file>.json` (what the head expects as input), and the feature
 * pipeline that builds that input. Sessions and the encoder are loaded once per process.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { REPO_ROOT } from '../common/paths.js';
import { z } from 'zod';
import { loadEncoder, type Encoder } from './encoder/encoder.js';
import { DEFAULT_ENCODER_DIR, encoderPresent } from './encoder/fetch.js';
import { answerFeatures, FEATURE_VERSION, promptFeatures } from './features.js';
import { lastUserMessage } from './text.js';
import type { EvaluationInput } from './types.js';

export { REPO_ROOT };

const layerSchema = z.object({ inputs: z.number(), outputs: z.number(), weights: z.array(z.number()), bias: z.array(z.number()) });
export const headMetaSchema = z.object({
  kind: z.enum(['answer-model', 'prerouter']),
  feature_version: z.string(),
  /** Which texts are embedded (in this order, after the cheap features); null: cheap features only. */
  encoder: z.object({ name: z.string(), max_tokens: z.number().int(), texts: z.array(z.enum(['prompt', 'answer'])) }).nullable(),
  input_name: z.string(),
  output_name: z.string(),
  input_dim: z.number().int(),
  /** One output per name: the model an answer-model scores, or every ladder model for a pre-router. */
  outputs: z.array(z.string()),
  /** A cheap-features-only head to use when the encoder is not available (relative to this file). */
  fallback_file: z.string().nullable(),
  /** Parameters, so tests can check the ONNX graph against the TypeScript forward pass. */
  head: z.object({ mean: z.array(z.number()), scale: z.array(z.number()), layers: z.array(layerSchema) }),
  training: z.record(z.string(), z.unknown()),
});
export type HeadMeta = z.infer<typeof headMetaSchema>;

export interface Logger {
  warn(obj: object, msg?: string): void;
}

export interface LoadedHead {
  file: string;
  meta: HeadMeta;
  /** Scores one input: one probability per `meta.outputs`. */
  score(input: EvaluationInput): Promise<number[]>;
  /** Builds the head's input vector (exposed for training parity checks). */
  inputVector(input: EvaluationInput): Promise<Float32Array>;
}

const encoders = new Map<string, Promise<Encoder>>();
function sharedEncoder(dir: string, maxTokens: number): Promise<Encoder> {
  const key = `${dir}|${maxTokens}`;
  let e = encoders.get(key);
  if (!e) {
    e = loadEncoder({ dir, maxTokens });
    encoders.set(key, e);
  }
  return e;
}

/** Prompt embeddings are reused across a request's steps and by the pre-router. */
const promptEmbeddings = new Map<string, Float32Array>();
async function embedCached(encoder: Encoder, text: string, cache: boolean): Promise<Float32Array> {
  const hit = cache ? promptEmbeddings.get(text) : undefined;
  if (hit) return hit;
  const [v] = await encoder.embed([text]);
  if (cache) {
    if (promptEmbeddings.size >= 1024) promptEmbeddings.delete(promptEmbeddings.keys().next().value!);
    promptEmbeddings.set(text, v!);
  }
  return v!;
}

export function resolveModelFile(file: string, baseDir: string = REPO_ROOT): string {
  return isAbsolute(file) ? file : join(baseDir, file);
}

const heads = new Map<string, Promise<LoadedHead>>();

export interface HeadDeps {
  /** Directory that relative model files resolve against (default: the repository root). */
  modelsDir?: string;
  /** Where the sentence encoder lives (default: .data/encoder). */
  encoderDir?: string;
  logger?: Logger;
}

/** Loads (once per path) a head; falls back to its cheap-feature head when the encoder is missing. */
export function loadHead(file: string, deps: HeadDeps = {}): Promise<LoadedHead> {
  const path = resolveModelFile(file, deps.modelsDir);
  const encoderDir = deps.encoderDir ?? DEFAULT_ENCODER_DIR;
  const key = `${path}|${encoderDir}`;
  let p = heads.get(key);
  if (!p) {
    p = loadHeadUncached(path, encoderDir, deps.logger);
    p.catch(() => heads.delete(key));
    heads.set(key, p);
  }
  return p;
}

async function loadHeadUncached(path: string, encoderDir: string, logger?: Logger): Promise<LoadedHead> {
  const metaPath = path.replace(/\.onnx$/, '') + '.json';
  let meta: HeadMeta;
  try {
    meta = headMetaSchema.parse(JSON.parse(await readFile(metaPath, 'utf8')));
  } catch (err) {
    throw new Error(`cannot read the head description ${metaPath} (written by npm run train): ${(err as Error).message}`, { cause: err });
  }
  if (meta.feature_version !== FEATURE_VERSION)
    throw new Error(`${path} was trained on features ${meta.feature_version}, this code computes ${FEATURE_VERSION}: run npm run train again`);
  if (meta.encoder && !encoderPresent(encoderDir)) {
    if (!meta.fallback_file) throw new Error(`${path} needs the sentence encoder, which is not fetched (npm run fetch:encoder)`);
    const fallback = join(dirname(path), meta.fallback_file);
    const msg = `sentence encoder not fetched (npm run fetch:encoder): ${path} uses its cheap-feature head ${meta.fallback_file}; its thresholds were calibrated for the encoder head`;
    if (logger) logger.warn({ model_file: path, fallback }, msg);
    else process.emitWarning(msg, { code: 'CASCADE_ENCODER_MISSING' });
    return loadHeadUncached(fallback, encoderDir, logger);
  }
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const encoder = meta.encoder ? await sharedEncoder(encoderDir, meta.encoder.max_tokens) : null;
  const inputVector = async (input: EvaluationInput): Promise<Float32Array> => {
    const prompt = lastUserMessage(input.messages);
    const cheap = meta.kind === 'prerouter' ? promptFeatures(prompt) : answerFeatures(input);
    const x = new Float32Array(meta.input_dim);
    x.set(cheap);
    let off = cheap.length;
    if (encoder && meta.encoder) {
      for (const which of meta.encoder.texts) {
        const v = which === 'prompt' ? await embedCached(encoder, prompt, true) : await embedCached(encoder, input.answer, false);
        x.set(v, off);
        off += v.length;
      }
    }
    if (off !== meta.input_dim) throw new Error(`${path}: built ${off} inputs, the head expects ${meta.input_dim}`);
    return x;
  };
  return {
    file: path,
    meta,
    inputVector,
    async score(input) {
      const x = await inputVector(input);
      const out = await session.run({ [meta.input_name]: new ort.Tensor('float32', x, [1, meta.input_dim]) });
      return Array.from(out[meta.output_name]!.data as Float32Array);
    },
  };
}

export function headFilesExist(file: string, baseDir?: string): boolean {
  const p = resolveModelFile(file, baseDir);
  return existsSync(p) && existsSync(p.replace(/\.onnx$/, '') + '.json');
}
