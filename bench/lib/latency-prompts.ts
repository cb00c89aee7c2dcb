/**
 * The prompts of the live latency bench: a fixed, seeded sample of the test split of GSM8K and
 * MT-Bench (RouteLLM data) restricted to prompts both models answered, so the farm replays a real
 * answer whichever model the router picks, and the returned answer's quality is known.
 */
import { join } from 'node:path';
import { loadDataset, splitOf, type DatasetRow } from '../../common/dataset.js';
import { seededRandom } from '../../common/random.js';
import { quality } from '../../evaluators/dataset-adapter.js';

export const MIXTRAL = 'mistralai/Mixtral-8x7B-Instruct-v0.1';
export const GPT4 = 'gpt-4-1106-preview';
/** MT-Bench answers run 5–10× longer than GSM8K's, so they are a fifth of the mix: long enough tails, bounded run time. */
const MT_BENCH_SHARE = 0.2;
/** MT-Bench judge scores are 1–10; quality is put on GSM8K's 0–1 scale to average the two. */
const MAX_SCORE = 10;

export interface BenchPrompt {
  row: DatasetRow;
  /** Model name → quality of its recorded answer on a 0–1 scale. */
  quality: Record<string, number>;
}

function shuffled<T>(items: T[], seed: number): T[] {
  const rand = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function usable(row: DatasetRow): BenchPrompt | null {
  const q: Record<string, number> = {};
  for (const model of [MIXTRAL, GPT4]) {
    const o = row.models[model];
    const v = quality(o);
    if (!o?.response || v === null) return null;
    q[model] = o.correct !== null ? v : v / MAX_SCORE;
  }
  return { row, quality: q };
}

/** `n` prompts (a fifth MT-Bench, as far as it has test prompts), in a seeded order that mixes the two datasets. */
export async function loadPrompts(dataDir: string, n: number, seed: number): Promise<BenchPrompt[]> {
  const usableTest = async (file: string) =>
    shuffled(
      (await loadDataset(join(dataDir, file)))
        .filter((r) => splitOf(r) === 'test')
        .map(usable)
        .filter((p): p is BenchPrompt => p !== null),
      seed,
    );
  const mtBench = await usableTest('mt_bench.jsonl');
  const gsm8k = await usableTest('gsm8k.jsonl');
  const mt = Math.min(Math.round(n * MT_BENCH_SHARE), mtBench.length);
  if (gsm8k.length < n - mt) throw new Error(`gsm8k.jsonl: only ${gsm8k.length} test prompts have labelled answers from both models (${n - mt} wanted)`);
  return shuffled([...mtBench.slice(0, mt), ...gsm8k.slice(0, n - mt)], seed);
}
