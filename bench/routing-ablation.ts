/**
 * node --import tsx bench/routing-ablation.ts -- [--data-dir ../shared/data/routellm] [--only gsm8k] [--boot 1000]
 *
 * What each feature group contributes to the answer model, and how uncertain the numbers are.
 * For every dataset with recorded answers, for the cheapest model (the weak side of the two-model
 * ladder): fit the answer head on `train` with a feature group removed (or alone), L2 chosen by
 * 5-fold CV AUROC on `train` exactly as `npm run train` does, then score `test` once and report
 * test AUROC and APGR (threshold sweep over 40 quantiles of the confidences, as the routing
 * benchmark does). Nothing is selected on `test`. Also: a bootstrap over test prompts of the
 * committed head's AUROC and APGR (95% interval).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseCli } from '../common/cli.js';
import { loadDataset, loadModelPrices, splitOf, type DatasetRow } from '../common/dataset.js';
import { evaluationInputOf, goodEnough, quality, viewOf } from '../evaluators/dataset-adapter.js';
import { loadEncoder } from '../evaluators/encoder/encoder.js';
import { ENCODER_NAME, ensureEncoder } from '../evaluators/encoder/fetch.js';
import { ANSWER_FEATURE_NAMES, answerFeatures, COMPACT_ANSWER_FEATURES, FEATURE_GROUPS } from '../evaluators/features.js';
import { loadHead, REPO_ROOT } from '../evaluators/head.js';
import { headForward } from '../evaluators/onnx/write.js';
import { embedAllCached, fileHash } from '../evaluators/train/embeddings.js';
import { fitLogistic } from '../evaluators/train/logistic.js';
import { auroc, foldOf, percentile } from '../evaluators/train/stats.js';
import { apgr, type SweepPoint } from './lib/metrics.js';
import { seededRandom } from '../common/random.js';

const USAGE = `usage: node --import tsx bench/routing-ablation.ts [--data-dir ../shared/data/routellm] [--only gsm8k] [--boot 1000] [--out <file.md>]

What each feature group contributes to the answer model (test AUROC and APGR), with bootstrap intervals.`;

const { values } = parseCli(USAGE, {
  options: {
    'data-dir': { type: 'string', default: resolve(REPO_ROOT, '../shared/data/routellm') },
    only: { type: 'string' },
    boot: { type: 'string', default: '1000' },
    out: { type: 'string', default: join(REPO_ROOT, 'bench/results/routing/ABLATION.md') },
  },
});

const L2_GRID = [0.003, 0.03, 0.3, 1, 3];

/** APGR of confidences on rows, with the routing benchmark's sweep (0, 40 quantiles, >1). */
function apgrOf(conf: number[], weakQ: number[], strongQ: number[]): number {
  const n = conf.length;
  const sorted = [...conf].sort((a, b) => a - b);
  const ts = new Set<number>([0, 1.000001]);
  for (let i = 0; i < 40; i++) ts.add(sorted[Math.min(n - 1, Math.floor((i / 40) * n))]!);
  const sweep: SweepPoint[] = [...ts].map((t) => {
    let q = 0;
    let strong = 0;
    for (let i = 0; i < n; i++) {
      if (conf[i]! >= t) q += weakQ[i]!;
      else {
        q += strongQ[i]!;
        strong++;
      }
    }
    return { threshold: t, cost: 0, quality: q / n, strong_share: strong / n };
  });
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  return apgr(sweep, mean(weakQ), mean(strongQ));
}

function fit(X: number[][], y: number[], l2: number) {
  const dim = X[0]!.length;
  const flat = new Float64Array(X.length * dim);
  X.forEach((x, i) => flat.set(x, i * dim));
  return fitLogistic(flat, X.length, dim, Float64Array.from(y), 1, { l2, iterations: 300 });
}

/** L2 by 5-fold CV AUROC on train, then fit on all of train and score test. */
function trainAndScore(ids: string[], Xtr: number[][], ytr: number[], Xte: number[][]): { cvAuroc: number; l2: number; scores: number[] } {
  let best = { cvAuroc: -1, l2: L2_GRID[0]! };
  for (const l2 of L2_GRID) {
    const oof = new Array<number>(ids.length).fill(0);
    for (let f = 0; f < 5; f++) {
      const tr = ids.map((_, i) => i).filter((i) => foldOf(ids[i]!, 5) !== f);
      const te = ids.map((_, i) => i).filter((i) => foldOf(ids[i]!, 5) === f);
      if (!tr.length || !te.length) continue;
      const m = fit(
        tr.map((i) => Xtr[i]!),
        tr.map((i) => ytr[i]!),
        l2,
      );
      for (const i of te) oof[i] = headForward(m, Float64Array.from(Xtr[i]!))[0]!;
    }
    const a = auroc(oof, ytr) ?? 0.5;
    if (a > best.cvAuroc + 1e-9) best = { cvAuroc: a, l2 };
  }
  const m = fit(Xtr, ytr, best.l2);
  return { ...best, scores: Xte.map((x) => headForward(m, Float64Array.from(x))[0]!) };
}

const out: string[] = [
  '# Answer-model ablation (`node --import tsx bench/routing-ablation.ts`)',
  '',
  "Weak model of each two-model ladder; heads fitted on `train` (L2 by 5-fold CV AUROC on `train`), scored once on `test`. APGR uses the routing benchmark's sweep (40 confidence quantiles). Cheap features unless the row says otherwise.",
  '',
];
const f3 = (v: number) => v.toFixed(3);
const dataDir = values['data-dir'];
for (const file of readdirSync(dataDir)
  .filter((f) => f.endsWith('.jsonl') && (!values.only || f.includes(values.only)))
  .sort()) {
  const data = join(dataDir, file);
  const name = file.replace(/\.jsonl$/, '');
  const all = await loadDataset(data);
  const train = all.filter((r) => splitOf(r) === 'train');
  const test = all.filter((r) => splitOf(r) === 'test');
  const view = viewOf(train, await loadModelPrices(data));
  const weak = view.models[0]!.name;
  const strong = view.best.name;
  const usable = (rows: DatasetRow[]) => rows.filter((r) => r.models[weak]?.response && goodEnough(r, weak, strong) !== null);
  const tr = usable(train);
  const te = usable(test);
  if (tr.length < 10 || te.length < 10) continue;
  const ytr = tr.map((r) => (goodEnough(r, weak, strong) ? 1 : 0));
  const yte = te.map((r) => (goodEnough(r, weak, strong) ? 1 : 0));
  const wq = te.map((r) => quality(r.models[weak]) ?? 0);
  const sq = te.map((r) => quality(r.models[strong]) ?? 0);
  const Ftr = tr.map((r) => answerFeatures(evaluationInputOf(r, weak, 0)));
  const Fte = te.map((r) => answerFeatures(evaluationInputOf(r, weak, 0)));
  const ids = tr.map((r) => r.id);
  const cols = (keep: (n: string) => boolean) => ANSWER_FEATURE_NAMES.map((n, j) => (keep(n) ? j : -1)).filter((j) => j >= 0);
  const pick = (F: number[][], c: number[]) => F.map((x) => c.map((j) => x[j]!));
  const v4Only = new Set<string>([
    ...FEATURE_GROUPS['math chain (v4)']!,
    'p_open_task',
    'p_exact_task',
    'p_length_limit',
    'a_log_words',
    'a_length_over_limit',
    'a_bullets',
    'a_paragraphs',
  ]);
  const configs: { label: string; c: number[] }[] = [
    { label: 'all cheap features (cheap-v4)', c: cols(() => true) },
    { label: 'cheap-v3 features (before this change)', c: cols((n) => !v4Only.has(n)) },
    ...Object.entries(FEATURE_GROUPS).map(([g, names]) => ({ label: `without ${g}`, c: cols((n) => !names.includes(n)) })),
    ...Object.entries(FEATURE_GROUPS).map(([g, names]) => ({ label: `only ${g}`, c: cols((n) => names.includes(n)) })),
    {
      label: 'compact: task type + answer length (a candidate below 200 training rows)',
      c: cols((n) => (COMPACT_ANSWER_FEATURES as readonly string[]).includes(n)),
    },
  ];
  out.push(
    `## ${name}: ${weak} (train ${tr.length}, test ${te.length} prompts, ${yte.filter(Boolean).length} good on test)`,
    '',
    '| features | features used | L2 (CV) | CV AUROC (train) | test AUROC | test APGR |',
    '|---|---|---|---|---|---|',
  );
  for (const cfg of configs) {
    const r = trainAndScore(ids, pick(Ftr, cfg.c), ytr, pick(Fte, cfg.c));
    out.push(`| ${cfg.label} | ${cfg.c.length} | ${r.l2} | ${f3(r.cvAuroc)} | ${f3(auroc(r.scores, yte) ?? 0.5)} | ${f3(apgrOf(r.scores, wq, sq))} |`);
    console.log(out[out.length - 1]);
  }
  // Cheap features + the answer embedding (what `npm run train` may choose).
  const got = await ensureEncoder();
  if (got.ok) {
    const encoder = await loadEncoder({ dir: got.dir, maxTokens: 32, threads: 2 });
    const texts = [...tr, ...te].map((r) => r.models[weak]!.response!);
    const emb = await embedAllCached(encoder, texts, `${await fileHash(data)}-${ENCODER_NAME}-32-single`);
    const withEmb = (rows: DatasetRow[], F: number[][]) => F.map((x, i) => [...x, ...emb.get(rows[i]!.models[weak]!.response!)!]);
    const r = trainAndScore(ids, withEmb(tr, Ftr), ytr, withEmb(te, Fte));
    out.push(
      `| all cheap features + answer embedding (MiniLM, 32 tokens) | ${Ftr[0]!.length}+384 | ${r.l2} | ${f3(r.cvAuroc)} | ${f3(auroc(r.scores, yte) ?? 0.5)} | ${f3(apgrOf(r.scores, wq, sq))} |`,
    );
    console.log(out[out.length - 1]);
  }
  // The committed head: bootstrap over test prompts.
  const manifestHead = join(REPO_ROOT, 'evaluators/models', `${name}-answer-${weak.replace(/[^A-Za-z0-9.-]+/g, '_').replace(/^_+|_+$/g, '')}.onnx`);
  const head = await loadHead(manifestHead);
  const scores: number[] = [];
  for (const r of te) scores.push((await head.score(evaluationInputOf(r, weak, 0)))[0]!);
  const B = Number(values.boot);
  const next = seededRandom(12345);
  const aps: number[] = [];
  const aus: number[] = [];
  for (let b = 0; b < B; b++) {
    const idx = te.map(() => Math.floor(next() * te.length));
    const y = idx.map((i) => yte[i]!);
    const s = idx.map((i) => scores[i]!);
    const au = auroc(s, y);
    if (au === null) continue;
    aus.push(au);
    aps.push(
      apgrOf(
        s,
        idx.map((i) => wq[i]!),
        idx.map((i) => sq[i]!),
      ),
    );
  }
  aps.sort((a, b) => a - b);
  aus.sort((a, b) => a - b);
  out.push(
    '',
    `Committed head \`${manifestHead.slice(REPO_ROOT.length + 1)}\` (${head.meta.encoder ? `cheap + ${head.meta.encoder.texts.join('+')} embedding` : 'cheap features'}) on test: AUROC ${f3(auroc(scores, yte) ?? 0.5)} (95% bootstrap interval ${f3(percentile(aus, 0.025))}–${f3(percentile(aus, 0.975))}), APGR ${f3(apgrOf(scores, wq, sq))} (${f3(percentile(aps, 0.025))}–${f3(percentile(aps, 0.975))}), ${B} resamples of the ${te.length} test prompts.`,
    '',
  );
  console.log(out[out.length - 2]);
}
await mkdir(join(values.out, '..'), { recursive: true });
await writeFile(values.out, out.join('\n'));
console.log(`wrote ${values.out}`);
