/**
 * npm run bench:evaluators -- [--data-dir ../shared/data/routellm] [--n 300] [--json]
 *
 * Latency of every evaluator on this machine, one evaluation at a time as the `evaluate` activity
 * runs them: p50/p90/p99 over recorded answers (each prompt new, so no embedding is cached),
 * after a warm-up. `none` is the in-run baseline (the cost of the call itself).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseCli } from '../common/cli.js';
import { loadDataset } from '../common/dataset.js';
import { evaluationInputOf } from '../evaluators/dataset-adapter.js';
import { ensureEncoder } from '../evaluators/encoder/fetch.js';
import { headMetaSchema, REPO_ROOT } from '../evaluators/head.js';
import { createEvaluator, loadPrerouter, type EvaluationInput, type EvaluatorSpec } from '../evaluators/index.js';
import { percentile } from '../evaluators/train/stats.js';

const USAGE = `usage: npm run bench:evaluators [-- --data-dir ../shared/data/routellm] [--n 300] [--json] [--out-dir bench/results]

Latency of every evaluator on this machine, one evaluation at a time (p50/p90/p99).`;

const { values } = parseCli(USAGE, {
  options: {
    'data-dir': { type: 'string', default: resolve(REPO_ROOT, '../shared/data/routellm') },
    n: { type: 'string', default: '300' },
    json: { type: 'boolean', default: false },
    'out-dir': { type: 'string', default: join(REPO_ROOT, 'bench/results') },
  },
});
const N = Number(values.n);
const WARMUP = 20;

const enc = await ensureEncoder();
if (!enc.ok) console.error(`note: ${enc.reason}; heads that need the encoder use their cheap-feature fallback`);

async function inputsFor(dataset: string | undefined): Promise<EvaluationInput[]> {
  const file = dataset ? join(values['data-dir'], dataset) : '';
  if (dataset && existsSync(file)) {
    const all = await loadDataset(file);
    const answered = all.filter((r) => Object.values(r.models).some((m) => m.response));
    // Datasets without recorded answers (labels only) still have prompts for the pre-router.
    const rows = answered.length ? answered : all;
    const out: EvaluationInput[] = [];
    for (let i = 0; out.length < N + WARMUP; i++) {
      const r = rows[i % rows.length]!;
      const model = Object.keys(r.models).find((m) => r.models[m]!.response) ?? Object.keys(r.models)[0]!;
      const input = evaluationInputOf(r, model, 1);
      // Repeats get a unique prompt so no cached prompt embedding flatters the numbers.
      out.push(i < rows.length ? input : { ...input, messages: [{ role: 'user', content: `${r.prompt} (${i})` }] });
    }
    return out;
  }
  return Array.from({ length: N + WARMUP }, (_, i) => ({
    messages: [{ role: 'user', content: `What is ${i} plus ${i + 7}? Show your work.` }],
    answer: `${i} + ${i + 7} = ${2 * i + 7}\n#### ${2 * i + 7}`,
    model: 'm',
    step: 1,
  }));
}

interface Row {
  evaluator: string;
  detail: string;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  n: number;
}
const rows: Row[] = [];
async function measure(label: string, detail: string, inputs: EvaluationInput[], fn: (i: EvaluationInput) => Promise<unknown> | unknown) {
  const times: number[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const t = performance.now();
    await fn(inputs[i]!);
    if (i >= WARMUP) times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  rows.push({ evaluator: label, detail, p50_ms: percentile(times, 0.5), p90_ms: percentile(times, 0.9), p99_ms: percentile(times, 0.99), n: times.length });
}

const generic = await inputsFor('gsm8k.jsonl');
const simple: [string, EvaluatorSpec][] = [
  ['none', { type: 'none' }],
  ['validators', { type: 'validators' }],
  ['arithmetic', { type: 'arithmetic', when_unchecked: 0.5 }],
  ['logprob', { type: 'logprob', when_absent: 0.5 }],
  ['self-consistency', { type: 'self-consistency', samples: 3 }],
];
for (const [label, spec] of simple) {
  const ev = await createEvaluator(spec);
  await measure(
    label,
    'recorded GSM8K answers',
    generic.map((g) => ({ ...g, samples: [g.answer, g.answer.slice(0, -1)] })),
    (i) => ev.evaluate(i),
  );
}

const modelsDir = join(REPO_ROOT, 'evaluators/models');
for (const f of readdirSync(modelsDir).filter((f) => f.endsWith('.json') && !f.endsWith('.manifest.json') && !f.includes('.cheap.'))) {
  const meta = headMetaSchema.parse(JSON.parse(readFileSync(join(modelsDir, f), 'utf8')));
  const file = join(modelsDir, f.replace(/\.json$/, '.onnx'));
  const inputs = await inputsFor(String(meta.training.dataset ?? ''));
  const features = meta.encoder && enc.ok ? `cheap features + MiniLM(${meta.encoder.texts.join('+')}, ${meta.encoder.max_tokens} tokens)` : 'cheap features';
  if (meta.kind === 'answer-model') {
    const ev = await createEvaluator({ type: 'answer-model', model_file: file });
    await measure('answer-model', `${f.replace(/\.json$/, '')}: ${features}`, inputs, (i) => ev.evaluate(i));
  } else {
    const pr = await loadPrerouter(file);
    await measure('prerouter', `${f.replace(/\.json$/, '')}: ${features}`, inputs, (i) => pr.predict(i.messages));
  }
}

const md = [
  `Evaluator latency on this machine (${(await import('node:os')).cpus().length} cores), one evaluation at a time, ${N} evaluations after ${WARMUP} warm-up; every prompt new (no cached embeddings).`,
  '',
  '| evaluator | what | p50 ms | p90 ms | p99 ms |',
  '|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.evaluator} | ${r.detail} | ${r.p50_ms.toFixed(3)} | ${r.p90_ms.toFixed(3)} | ${r.p99_ms.toFixed(3)} |`),
].join('\n');
await mkdir(values['out-dir'], { recursive: true });
await writeFile(join(values['out-dir'], 'evaluators-latency.json'), JSON.stringify({ measured_at: new Date().toISOString(), rows }, null, 1) + '\n');
await writeFile(join(values['out-dir'], 'evaluators-latency.md'), md + '\n');
console.log(values.json ? JSON.stringify({ rows }) : md);
