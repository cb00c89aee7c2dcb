/**
 * Trains the answer-confidence heads (one per model that has recorded answers) and the pre-router
 * from a dataset in the shared schema, choosing features and regularisation by cross-validation on
 * the training split only, and writes each as ONNX + a sidecar description, plus the out-of-fold
 * scores calibration uses (so thresholds are never tuned on scores the head was fitted to).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { loadDataset, loadModelPrices, splitOf, type DatasetRow } from '../../common/dataset.js';
import { goodEnough, evaluationInputOf, viewOf } from '../dataset-adapter.js';
import { loadEncoder, type Encoder } from '../encoder/encoder.js';
import { ENCODER_NAME, ensureEncoder } from '../encoder/fetch.js';
import { ANSWER_FEATURE_NAMES, answerFeatures, COMPACT_ANSWER_FEATURES, FEATURE_VERSION, PROMPT_FEATURE_NAMES, promptFeatures } from '../features.js';
import { REPO_ROOT, type HeadMeta } from '../head.js';
import { headForward, headToOnnx } from '../onnx/write.js';
import { embedAllCached, fileHash } from './embeddings.js';
import { fitLogistic, type LogisticModel } from './logistic.js';
import { auroc, foldOf, logLoss } from './stats.js';

export interface TrainOptions {
  data: string;
  /** Prefix of the written files (default: the data file's base name). */
  name?: string;
  outDir?: string;
  split?: string;
  useEncoder?: boolean;
  maxTokens?: number;
  /**
   * Let the pre-router use the prompt embedding too. Off by default: the encoder costs ~4 ms per
   * prompt on 2 cores and the pre-router's budget is 1 ms (cheap prompt features take ~0.03 ms).
   */
  prerouterEncoder?: boolean;
  /**
   * Let answer models embed the prompt as well as the answer: a second encoder pass (~4 ms) when
   * the prompt's embedding is not cached, beyond the 5 ms budget. Off by default.
   */
  answerPromptEmbedding?: boolean;
  /**
   * What an answer head predicts on binary labels. 'correct' (default): the answer's own label.
   * 'not-worse': the answer is correct or the best single model's answer is wrong too — escalating
   * would not buy anything, the definition graded labels use. The best model's own head always
   * uses 'correct' (its 'not-worse' label is constant). On GSM8K train, 'not-worse' raised CV APGR
   * 0.811 → 0.828 at equal CV AUROC, inside the noise, so the default stays.
   */
  answerLabel?: 'not-worse' | 'correct';
  log?: (msg: string) => void;
}

/** The label an answer head is trained on (see TrainOptions.answerLabel); null when unknown. */
export function answerTrainingLabel(row: DatasetRow, model: string, best: string, kind: 'not-worse' | 'correct'): boolean | null {
  const own = goodEnough(row, model, best);
  if (own === null || kind === 'correct' || model === best || row.models[model]?.correct == null) return own;
  const bestOk = goodEnough(row, best, best);
  return bestOk === null ? own : own || !bestOk;
}

export interface Manifest {
  name: string;
  dataset_file: string;
  dataset_sha1: string;
  split: string;
  label_kind: 'binary' | 'graded';
  best_model: string;
  /** model → answer-model file (repository-relative). */
  answer_models: Record<string, string>;
  prerouter: string | null;
  /** Out-of-fold scores on the training split: calibration uses these, never in-sample scores. */
  oof: {
    answer: Record<string, Record<string, number>>;
    prerouter: Record<string, Record<string, number>>;
  };
  report: Record<string, unknown>;
}

type TextSet = ('prompt' | 'answer')[];
interface Candidate {
  texts: TextSet;
  l2: number;
  /** Only COMPACT_ANSWER_FEATURES (the others are held constant, so the head ignores them). */
  compact?: boolean;
}

/**
 * Below this many labelled rows an answer model may also be a compact head (COMPACT_ANSWER_FEATURES),
 * chosen like any other candidate by CV: tens of rows cannot fit the full feature vector.
 */
export const SMALL_DATA_ROWS = 200;
const compactMask = ANSWER_FEATURE_NAMES.map((n) => (COMPACT_ANSWER_FEATURES as readonly string[]).includes(n));
const masked = (cheap: number[][], compact: boolean | undefined) => (compact ? cheap.map((x) => x.map((v, j) => (compactMask[j] ? v : 0))) : cheap);
const candidateKey = (c: Candidate) => `${c.texts.join('+') || (c.compact ? 'compact' : 'cheap')}@${c.l2}`;

const L2_GRID = [0.003, 0.03, 0.3, 1, 3];
export const DEFAULT_ANSWER_MAX_TOKENS = 32;

const slug = (s: string) => s.replace(/[^A-Za-z0-9.-]+/g, '_').replace(/^_+|_+$/g, '');

/** Builds the design matrix: cheap features then the embeddings named by `texts`. */
function design(cheap: number[][], embeds: (Float32Array | null)[][], texts: TextSet): { X: Float64Array; dim: number } {
  const rows = cheap.length;
  const embDim = embeds[0]?.find((e) => e)?.length ?? 0;
  const dim = cheap[0]!.length + texts.length * embDim;
  const X = new Float64Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    X.set(cheap[i]!, i * dim);
    texts.forEach((_, t) => {
      const e = embeds[i]![t];
      if (e) X.set(e, i * dim + cheap[i]!.length + t * embDim);
    });
  }
  return { X, dim };
}

function subset(X: Float64Array, dim: number, idx: number[]): Float64Array {
  const out = new Float64Array(idx.length * dim);
  idx.forEach((r, i) => out.set(X.subarray(r * dim, (r + 1) * dim), i * dim));
  return out;
}

function predictAll(model: LogisticModel, X: Float64Array, dim: number, idx: number[]): number[][] {
  return idx.map((r) => headForward(model, X.subarray(r * dim, (r + 1) * dim)));
}

interface CvResult {
  candidate: Candidate;
  auroc: number;
  logLoss: number;
  oof: number[][];
}

/** K-fold CV (folds from the row id) of one candidate; labels NaN where unknown. */
function crossValidate(ids: string[], X: Float64Array, dim: number, Y: Float64Array, outputs: number, cand: Candidate, iterations: number): CvResult {
  const folds = ids.length > 2000 ? 3 : 5;
  const fold = ids.map((id) => foldOf(id, folds));
  const oof: number[][] = ids.map(() => new Array<number>(outputs).fill(NaN));
  for (let f = 0; f < folds; f++) {
    const tr = ids.map((_, i) => i).filter((i) => fold[i] !== f);
    const te = ids.map((_, i) => i).filter((i) => fold[i] === f);
    if (!te.length || !tr.length) continue;
    const m = fitLogistic(subset(X, dim, tr), tr.length, dim, subset(Y, outputs, tr), outputs, { l2: cand.l2, iterations });
    predictAll(m, X, dim, te).forEach((p, j) => (oof[te[j]!] = p));
  }
  let aucSum = 0;
  let aucN = 0;
  let llSum = 0;
  for (let o = 0; o < outputs; o++) {
    const keep = ids.map((_, i) => i).filter((i) => !Number.isNaN(Y[i * outputs + o]!) && !Number.isNaN(oof[i]![o]!));
    const a = auroc(
      keep.map((i) => oof[i]![o]!),
      keep.map((i) => Y[i * outputs + o]!),
    );
    if (a !== null) {
      aucSum += a;
      aucN++;
    }
    llSum += logLoss(
      keep.map((i) => oof[i]![o]!),
      keep.map((i) => Y[i * outputs + o]!),
    );
  }
  return { candidate: cand, auroc: aucN ? aucSum / aucN : 0.5, logLoss: llSum / outputs, oof };
}

/** Best by CV AUROC; a simpler candidate (fewer embedded texts) wins ties within 0.005. */
function pick(results: CvResult[]): CvResult {
  return results.reduce((best, r) => {
    const better =
      r.auroc > best.auroc + 0.005 ||
      (Math.abs(r.auroc - best.auroc) <= 0.005 && r.candidate.texts.length < best.candidate.texts.length) ||
      (Math.abs(r.auroc - best.auroc) <= 0.005 && r.candidate.texts.length === best.candidate.texts.length && r.logLoss < best.logLoss);
    return better ? r : best;
  });
}

export async function train(opts: TrainOptions): Promise<Manifest> {
  const log = opts.log ?? ((m: string) => console.log(m));
  const split = opts.split ?? 'train';
  const name = opts.name ?? basename(opts.data).replace(/\.jsonl$/, '');
  const outDir = opts.outDir ?? join(REPO_ROOT, 'evaluators/models');
  const maxTokens = opts.maxTokens ?? DEFAULT_ANSWER_MAX_TOKENS;
  const started = Date.now();

  const all = await loadDataset(opts.data);
  const rows = all.filter((r) => splitOf(r) === split);
  if (rows.length < 10) throw new Error(`${opts.data}: only ${rows.length} rows in split "${split}"; need at least 10 to train`);
  const view = viewOf(rows, await loadModelPrices(opts.data));
  const sha1 = await fileHash(opts.data);
  log(
    `train: ${rows.length} rows of split "${split}" (${all.length} in file), ${view.models.length} models, labels ${view.labelKind}, best single model ${view.best.name}`,
  );

  let encoder: Encoder | null = null;
  if (opts.useEncoder !== false) {
    const got = await ensureEncoder();
    if (got.ok) encoder = await loadEncoder({ dir: got.dir, maxTokens, threads: 2 });
    else log(`train: sentence encoder unavailable (${got.reason}); training cheap-feature heads only`);
  }
  const withResponses = view.models.filter((m) => rows.filter((r) => r.models[m.name]?.response).length >= rows.length * 0.5);
  let embeddings = new Map<string, Float32Array>();
  if (encoder) {
    const needPrompts = (withResponses.length > 0 && opts.answerPromptEmbedding) || opts.prerouterEncoder;
    const texts = [
      ...(needPrompts ? rows.map((r) => r.prompt) : []),
      ...rows.flatMap((r) => withResponses.map((m) => r.models[m.name]?.response ?? '').filter(Boolean)),
    ];
    const t0 = Date.now();
    embeddings = await embedAllCached(encoder, texts, `${sha1}-${ENCODER_NAME}-${maxTokens}-single`);
    log(`train: ${new Set(texts).size} texts embedded or read from cache in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  const emb = (t: string | null | undefined) => (t ? (embeddings.get(t) ?? null) : null);
  const iterations = rows.length > 2000 ? 200 : 300;
  await mkdir(outDir, { recursive: true });
  const manifest: Manifest = {
    name,
    dataset_file: basename(opts.data),
    dataset_sha1: sha1,
    split,
    label_kind: view.labelKind,
    best_model: view.best.name,
    answer_models: {},
    prerouter: null,
    oof: { answer: {}, prerouter: {} },
    report: {},
  };

  const writeHead = async (file: string, model: LogisticModel, meta: Omit<HeadMeta, 'head' | 'input_name' | 'output_name' | 'input_dim'>) => {
    const full: HeadMeta = { ...meta, input_name: 'x', output_name: 'p', input_dim: model.mean.length, head: model };
    await writeFile(
      join(outDir, `${file}.onnx`),
      headToOnnx({ inputName: 'x', outputName: 'p', ...model, metadata: { kind: meta.kind, feature_version: meta.feature_version } }),
    );
    await writeFile(join(outDir, `${file}.json`), JSON.stringify(full) + '\n');
  };

  const candidatesFor = (textOptions: TextSet[]): Candidate[] => textOptions.flatMap((texts) => L2_GRID.map((l2) => ({ texts, l2 })));

  // ---- answer-confidence heads, one per model with recorded answers ----
  for (const m of withResponses) {
    const answerLabel = opts.answerLabel ?? 'correct';
    const labelOf = (r: DatasetRow) => answerTrainingLabel(r, m.name, view.best.name, answerLabel);
    const labelled = rows.filter((r) => labelOf(r) !== null);
    const Y = Float64Array.from(labelled.map((r) => (labelOf(r) ? 1 : 0)));
    const pos = Y.reduce((a, b) => a + b, 0);
    if (labelled.length < 10 || pos === 0 || pos === labelled.length) {
      log(`train: skip answer-model for ${m.name} (${labelled.length} labelled rows, ${pos} good)`);
      continue;
    }
    const cheap = labelled.map((r) => answerFeatures(evaluationInputOf(r, m.name, 0)));
    const embeds = labelled.map((r) => [emb(r.prompt), emb(r.models[m.name]?.response)]);
    const textOptions: TextSet[] = encoder ? [[], ['answer'], ...(opts.answerPromptEmbedding ? [['prompt', 'answer'] as TextSet] : [])] : [[]];
    const candidates = [
      ...candidatesFor(textOptions),
      ...(labelled.length < SMALL_DATA_ROWS ? L2_GRID.map((l2): Candidate => ({ texts: [], l2, compact: true })) : []),
    ];
    const results = candidates.map((cand) => {
      const { X, dim } = design(
        masked(cheap, cand.compact),
        embeds.map((e) => cand.texts.map((t) => (t === 'prompt' ? e[0]! : e[1]!))),
        cand.texts,
      );
      return crossValidate(
        labelled.map((r) => r.id),
        X,
        dim,
        Y,
        1,
        cand,
        iterations,
      );
    });
    const chosen = pick(results);
    const fit = (cand: Candidate) => {
      const { X, dim } = design(
        masked(cheap, cand.compact),
        embeds.map((e) => cand.texts.map((t) => (t === 'prompt' ? e[0]! : e[1]!))),
        cand.texts,
      );
      return fitLogistic(X, labelled.length, dim, Y, 1, { l2: cand.l2, iterations });
    };
    const file = `${name}-answer-${slug(m.name)}`;
    let fallbackFile: string | null = null;
    const training = {
      dataset: basename(opts.data),
      dataset_sha1: sha1,
      split,
      rows: labelled.length,
      positives: pos,
      features: chosen.candidate.compact ? 'compact' : 'all',
      l2: chosen.candidate.l2,
      cv_auroc: chosen.auroc,
      label:
        view.labelKind === 'graded'
          ? `score >= ${view.best.name}'s score`
          : answerLabel === 'correct' || m.name === view.best.name
            ? 'correct'
            : `correct or ${view.best.name} wrong`,
    };
    if (chosen.candidate.texts.length) {
      const cheapBest = pick(results.filter((r) => r.candidate.texts.length === 0));
      fallbackFile = `${file}.cheap.onnx`;
      await writeHead(`${file}.cheap`, fit(cheapBest.candidate), {
        kind: 'answer-model',
        feature_version: FEATURE_VERSION,
        encoder: null,
        outputs: [m.name],
        fallback_file: null,
        training: { ...training, features: cheapBest.candidate.compact ? 'compact' : 'all', l2: cheapBest.candidate.l2, cv_auroc: cheapBest.auroc },
      });
    }
    await writeHead(file, fit(chosen.candidate), {
      kind: 'answer-model',
      feature_version: FEATURE_VERSION,
      encoder: chosen.candidate.texts.length ? { name: ENCODER_NAME, max_tokens: maxTokens, texts: chosen.candidate.texts } : null,
      outputs: [m.name],
      fallback_file: fallbackFile,
      training,
    });
    manifest.answer_models[m.name] = relative(REPO_ROOT, join(outDir, `${file}.onnx`));
    manifest.oof.answer[m.name] = Object.fromEntries(labelled.map((r, i) => [r.id, round4(chosen.oof[i]![0]!)]));
    manifest.report[`answer:${m.name}`] = Object.fromEntries(results.map((r) => [candidateKey(r.candidate), round(r.auroc)]));
    log(
      `train: answer-model ${m.name}: CV AUROC ${chosen.auroc.toFixed(3)} with ${chosen.candidate.texts.join('+') || (chosen.candidate.compact ? 'compact cheap features' : 'cheap features')} (l2 ${chosen.candidate.l2}), ${labelled.length} rows, ${pos} good`,
    );
  }

  // ---- pre-router: P(good enough) per model from the prompt alone ----
  {
    const outs = view.models.map((m) => m.name);
    const Y = new Float64Array(rows.length * outs.length);
    rows.forEach((r, i) =>
      outs.forEach((m, o) => {
        const g = goodEnough(r, m, view.best.name);
        Y[i * outs.length + o] = g === null ? NaN : g ? 1 : 0;
      }),
    );
    const cheap = rows.map((r) => promptFeatures(r.prompt));
    const embeds = rows.map((r) => [emb(r.prompt)]);
    const textOptions: TextSet[] = encoder && opts.prerouterEncoder ? [[], ['prompt']] : [[]];
    const results = candidatesFor(textOptions).map((cand) => {
      const { X, dim } = design(cheap, cand.texts.length ? embeds : rows.map(() => []), cand.texts);
      return crossValidate(
        rows.map((r) => r.id),
        X,
        dim,
        Y,
        outs.length,
        cand,
        iterations,
      );
    });
    const chosen = pick(results);
    const { X, dim } = design(cheap, chosen.candidate.texts.length ? embeds : rows.map(() => []), chosen.candidate.texts);
    const model = fitLogistic(X, rows.length, dim, Y, outs.length, { l2: chosen.candidate.l2, iterations });
    const file = `${name}-prerouter`;
    let fallbackFile: string | null = null;
    const training = { dataset: basename(opts.data), dataset_sha1: sha1, split, rows: rows.length, l2: chosen.candidate.l2, cv_auroc: chosen.auroc };
    if (chosen.candidate.texts.length) {
      const cheapBest = pick(results.filter((r) => r.candidate.texts.length === 0));
      const c = design(
        cheap,
        rows.map(() => []),
        [],
      );
      fallbackFile = `${file}.cheap.onnx`;
      await writeHead(`${file}.cheap`, fitLogistic(c.X, rows.length, c.dim, Y, outs.length, { l2: cheapBest.candidate.l2, iterations }), {
        kind: 'prerouter',
        feature_version: FEATURE_VERSION,
        encoder: null,
        outputs: outs,
        fallback_file: null,
        training: { ...training, l2: cheapBest.candidate.l2, cv_auroc: cheapBest.auroc },
      });
    }
    await writeHead(file, model, {
      kind: 'prerouter',
      feature_version: FEATURE_VERSION,
      encoder: chosen.candidate.texts.length ? { name: ENCODER_NAME, max_tokens: maxTokens, texts: ['prompt'] } : null,
      outputs: outs,
      fallback_file: fallbackFile,
      training,
    });
    manifest.prerouter = relative(REPO_ROOT, join(outDir, `${file}.onnx`));
    manifest.oof.prerouter = Object.fromEntries(rows.map((r, i) => [r.id, Object.fromEntries(outs.map((m, o) => [m, round4(chosen.oof[i]![o]!)]))]));
    manifest.report.prerouter = Object.fromEntries(results.map((r) => [`${r.candidate.texts.join('+') || 'cheap'}@${r.candidate.l2}`, round(r.auroc)]));
    log(
      `train: prerouter over ${outs.length} models: mean CV AUROC ${chosen.auroc.toFixed(3)} with ${chosen.candidate.texts.join('+') || 'cheap features'} (l2 ${chosen.candidate.l2})`,
    );
  }

  await writeFile(join(outDir, `${name}.manifest.json`), JSON.stringify(manifest) + '\n');
  log(`train: wrote ${relative(process.cwd(), join(outDir, `${name}.manifest.json`))} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return manifest;
}

const round = (v: number) => Math.round(v * 1e6) / 1e6;
/** Out-of-fold scores only rank prompts for threshold search: 4 decimals keep the manifest small. */
const round4 = (v: number) => Math.round(v * 1e4) / 1e4;

export type { DatasetRow };
// Feature name lists are re-exported for reports and docs.
export { ANSWER_FEATURE_NAMES, PROMPT_FEATURE_NAMES };
