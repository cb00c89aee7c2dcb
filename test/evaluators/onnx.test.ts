import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { createEvaluator } from '../../evaluators/index.js';
import { loadEncoder } from '../../evaluators/encoder/encoder.js';
import { ENCODER_NAME, ensureEncoder } from '../../evaluators/encoder/fetch.js';
import { ANSWER_FEATURE_NAMES, COMPACT_ANSWER_FEATURES, FEATURE_VERSION } from '../../evaluators/features.js';
import { headMetaSchema, loadHead, REPO_ROOT, type HeadMeta } from '../../evaluators/head.js';
import { headForward, headToOnnx, type HeadSpec } from '../../evaluators/onnx/write.js';
import { fitLogistic } from '../../evaluators/train/logistic.js';
import { train } from '../../evaluators/train/train.js';
import { seededRandom } from '../../common/random.js';
import { writeSyntheticDataset } from './synthetic.js';

const TOL = 1e-5;

function randomHead(rand: () => number, dims: number[]): HeadSpec {
  const layers = dims.slice(1).map((out, i) => ({
    inputs: dims[i]!,
    outputs: out,
    weights: Array.from({ length: dims[i]! * out }, () => rand() * 2 - 1),
    bias: Array.from({ length: out }, () => rand() - 0.5),
  }));
  return {
    inputName: 'x',
    outputName: 'p',
    mean: Array.from({ length: dims[0]! }, () => rand()),
    scale: Array.from({ length: dims[0]! }, () => rand() * 2),
    layers,
  };
}

const sampleInputs = [
  { messages: [{ role: 'user', content: 'Janet has 16 eggs and eats 3. How many are left?' }], answer: '16 - 3 = 13\n#### 13', model: 'm', step: 1 },
  { messages: [{ role: 'user', content: 'Write a haiku about autumn, in JSON.' }], answer: '{"haiku": "leaves fall"}', model: 'm', step: 1 },
  {
    messages: [{ role: 'user', content: 'Explain TCP slow start.' }],
    answer: "I'm not sure, but I think it probably doubles the window.",
    model: 'm',
    step: 1,
  },
];

describe('ONNX heads', () => {
  it('the written ONNX graph gives the TypeScript forward pass (logistic and MLP)', async () => {
    const rand = seededRandom(7);
    for (const dims of [
      [12, 1],
      [30, 4],
      [20, 8, 3],
    ]) {
      const spec = randomHead(rand, dims);
      const session = await ort.InferenceSession.create(headToOnnx(spec));
      for (let k = 0; k < 20; k++) {
        const x = Float32Array.from({ length: dims[0]! }, () => rand() * 4 - 2);
        const out = (await session.run({ x: new ort.Tensor('float32', x, [1, dims[0]!]) })).p!.data as Float32Array;
        const ts = headForward(spec, x);
        ts.forEach((v, i) => assert.ok(Math.abs(v - out[i]!) < TOL, `${dims}: ${v} vs ${out[i]}`));
      }
    }
  });

  it('logistic regression learns a separable problem and is deterministic', () => {
    const rand = seededRandom(3);
    const n = 200;
    const X = new Float64Array(n * 3);
    const Y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < 3; d++) X[i * 3 + d] = rand() * 2 - 1;
      Y[i] = X[i * 3]! + 0.5 * X[i * 3 + 1]! > 0 ? 1 : 0;
    }
    const a = fitLogistic(X, n, 3, Y, 1, { l2: 0.001 });
    const b = fitLogistic(X, n, 3, Y, 1, { l2: 0.001 });
    assert.deepEqual(a, b);
    let right = 0;
    for (let i = 0; i < n; i++) if ((headForward(a, X.subarray(i * 3, i * 3 + 3))[0]! > 0.5 ? 1 : 0) === Y[i]) right++;
    assert.ok(right / n > 0.95, `accuracy ${right / n}`);
  });

  it('every committed head loads with onnxruntime and matches its recorded parameters', async () => {
    const dir = join(REPO_ROOT, 'evaluators/models');
    const metas = readdirSync(dir).filter((f) => f.endsWith('.json') && !f.endsWith('.manifest.json'));
    assert.ok(metas.length > 0);
    if (metas.some((f) => headMetaSchema.parse(JSON.parse(readFileSync(join(dir, f), 'utf8'))).encoder)) {
      const got = await ensureEncoder();
      assert.ok(got.ok, `encoder fetch failed: ${got.ok ? '' : got.reason}`);
    }
    for (const f of metas) {
      const head = await loadHead(join(dir, f.replace(/\.json$/, '.onnx')));
      for (const input of sampleInputs) {
        const x = await head.inputVector(input);
        const ts = headForward(head.meta.head, x);
        const onnx = await head.score(input);
        ts.forEach((v, i) => assert.ok(Math.abs(v - onnx[i]!) < TOL, `${f}: ${v} vs ${onnx[i]}`));
        onnx.forEach((p) => assert.ok(p >= 0 && p <= 1));
      }
    }
  });

  it('small training sets also try the compact answer features; a compact head ignores the others', async () => {
    const { file, models } = writeSyntheticDataset({ models: 2, rows: 120 });
    const out = join(file, '..', 'compact');
    const m = await train({ data: file, outDir: out, useEncoder: false, log: () => {} });
    const report = m.report[`answer:${models[0]}`] as Record<string, number>;
    assert.ok(
      Object.keys(report).some((k) => k.startsWith('compact@')),
      JSON.stringify(report),
    );
    // A compact head: every non-compact input has scale 0, so it cannot move the score.
    const cols = ANSWER_FEATURE_NAMES.map((n) => (COMPACT_ANSWER_FEATURES as readonly string[]).includes(n));
    const masked = cols.map((keep) => (keep ? 1 : 0));
    const spec = fitLogistic(
      Float64Array.from({ length: 40 * cols.length }, (_, i) => ((i * 7919) % 13) * masked[i % cols.length]!),
      40,
      cols.length,
      Float64Array.from({ length: 40 }, (_, i) => i % 2),
      1,
      { l2: 0.03 },
    );
    spec.scale.forEach((sc, j) => {
      if (!cols[j]) assert.equal(sc, 0);
    });
  });

  it('npm run train writes heads that score like the training code, reproducibly', async () => {
    const { file, models } = writeSyntheticDataset({ models: 3, rows: 120 });
    const outA = join(file, '..', 'a');
    const outB = join(file, '..', 'b');
    const quiet = () => {};
    const ma = await train({ data: file, outDir: outA, useEncoder: false, log: quiet });
    await train({ data: file, outDir: outB, useEncoder: false, log: quiet });
    for (const m of models.slice(0, 2)) {
      const rel = ma.answer_models[m]!;
      const name = rel.split('/').pop()!;
      assert.deepEqual(readFileSync(join(outA, name)), readFileSync(join(outB, name)), 'same data, same bytes');
      const ev = await createEvaluator({ type: 'answer-model', model_file: join(outA, name) });
      const head = await loadHead(join(outA, name));
      for (const input of sampleInputs) {
        const c = (await ev.evaluate(input)).confidence;
        const ts = headForward(head.meta.head, await head.inputVector(input))[0]!;
        assert.ok(Math.abs(c - ts) < TOL);
        assert.equal((await ev.evaluate(input)).confidence, c, 'deterministic');
      }
    }
    assert.ok(ma.prerouter);
  });

  it('the sentence encoder is fetched on demand and embeds deterministically', async () => {
    const got = await ensureEncoder();
    assert.ok(got.ok, got.ok ? '' : got.reason);
    const enc = await loadEncoder({ dir: got.dir, maxTokens: 40 });
    const [a] = await enc.embed(['The cat sat on the mat']);
    const [b] = await enc.embed(['A cat is sitting on a mat']);
    const [c] = await enc.embed(['Quarterly revenue grew by 5%']);
    const [a2] = await enc.embed(['The cat sat on the mat']);
    const dot = (x: Float32Array, y: Float32Array) => x.reduce((s, v, i) => s + v * y[i]!, 0);
    assert.ok(Math.abs(dot(a!, a!) - 1) < 1e-4);
    assert.ok(dot(a!, b!) > dot(a!, c!) + 0.3);
    a!.forEach((v, i) => assert.ok(Math.abs(v - a2![i]!) < 1e-5));
  });
});

describe('without the sentence encoder', () => {
  it('an encoder head degrades to its cheap-feature head with a warning', async () => {
    // Self-contained: an encoder head and its cheap fallback written to a temp dir (the committed
    // heads may or may not use the encoder, depending on what cross-validation chose).
    const dir = mkdtempSync(join(tmpdir(), 'cascade-fallback-'));
    const rand = seededRandom(7);
    const cheapDim = ANSWER_FEATURE_NAMES.length;
    const write = (file: string, dims: number[], encoder: HeadMeta['encoder'], fallback: string | null) => {
      const spec = randomHead(rand, dims);
      writeFileSync(join(dir, `${file}.onnx`), headToOnnx(spec));
      const meta: HeadMeta = {
        kind: 'answer-model',
        feature_version: FEATURE_VERSION,
        encoder,
        input_name: 'x',
        output_name: 'p',
        input_dim: dims[0]!,
        outputs: ['m'],
        fallback_file: fallback,
        head: { mean: spec.mean, scale: spec.scale, layers: spec.layers },
        training: {},
      };
      writeFileSync(join(dir, `${file}.json`), JSON.stringify(meta));
    };
    write('head.cheap', [cheapDim, 1], null, null);
    write('head', [cheapDim + 384, 1], { name: ENCODER_NAME, max_tokens: 32, texts: ['answer'] }, 'head.cheap.onnx');
    const warnings: string[] = [];
    const logger = { warn: (_: object, msg?: string) => void warnings.push(msg ?? '') };
    const file = join(dir, 'head.onnx');
    const head = await loadHead(file, { encoderDir: join(dir, 'no-encoder-here'), logger });
    assert.equal(head.meta.encoder, null);
    assert.match(head.file, /\.cheap\.onnx$/);
    assert.match(warnings[0] ?? '', /npm run fetch:encoder/);
    const ev = await createEvaluator({ type: 'answer-model', model_file: file }, { encoderDir: join(dir, 'no-encoder-here'), logger });
    const c = (await ev.evaluate(sampleInputs[0]!)).confidence;
    assert.ok(c >= 0 && c <= 1);
  });
});
