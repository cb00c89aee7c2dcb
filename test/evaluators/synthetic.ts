/**
 * Synthetic datasets in the shared schema where the right routing is known. With the default
 * `signal: 'arithmetic'`, each model answers an addition and shows it; a wrong answer shows wrong
 * arithmetic, so the arithmetic evaluator is a perfect judge and calibration has a known optimum.
 * With `signal: 'logprob'`, answers show no working and the recorded logprob is a noisy signal
 * (AUROC about 0.85), so a policy's true quality can be measured on a large fresh sample.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededRandom } from '../../common/random.js';

export interface SyntheticOptions {
  models: number;
  rows: number;
  /** Probability that model k (0 = cheapest) is correct. */
  accuracy?: (k: number, models: number) => number;
  graded?: boolean;
  seed?: number;
  signal?: 'arithmetic' | 'logprob';
  /** Written as every row's `split` (default: none, so sha1(id) decides). */
  split?: string;
}

export interface SyntheticRow {
  id: string;
  dataset: string;
  split?: string;
  prompt: string;
  reference: string;
  models: Record<
    string,
    { response: string; correct?: boolean; score?: number; input_tokens: number; output_tokens: number; cost_usd: number; logprob?: number }
  >;
}

export function syntheticModels(count: number): string[] {
  return Array.from({ length: count }, (_, k) => `synth/model-${String.fromCharCode(97 + k)}`);
}

export function syntheticRows(opts: SyntheticOptions): SyntheticRow[] {
  const rand = seededRandom(opts.seed ?? 42);
  const acc = opts.accuracy ?? ((k, n) => 0.55 + (0.4 * k) / Math.max(1, n - 1));
  const models = syntheticModels(opts.models);
  const rows: SyntheticRow[] = [];
  for (let i = 0; i < opts.rows; i++) {
    const a = 10 + Math.floor(rand() * 90);
    const b = 10 + Math.floor(rand() * 90);
    const outcomes: SyntheticRow['models'] = {};
    models.forEach((m, k) => {
      const correct = rand() < acc(k, opts.models);
      const shown = correct ? a + b : a + b + 1 + Math.floor(rand() * 5);
      const price = 10 ** (k / 2); // different price scales: $1 ... per 1M tokens
      const tokens = 50;
      // Confidence exp(logprob): correct answers mostly high, wrong ones mostly low, overlapping.
      const conf = opts.signal !== 'logprob' ? 1 : correct ? 0.3 + 0.7 * rand() ** 0.6 : 0.75 * rand() ** 1.5;
      outcomes[m] = {
        response: opts.signal === 'logprob' ? `The sum is ${shown}.\n#### ${shown}` : `We add the two numbers: ${a} + ${b} = ${shown}.\n#### ${shown}`,
        ...(opts.graded ? { score: correct ? 9 : 3 } : { correct }),
        input_tokens: 40,
        output_tokens: 10,
        cost_usd: (tokens * price) / 1e6,
        ...(opts.signal === 'logprob' ? { logprob: Math.log(Math.max(1e-6, conf)) } : {}),
      };
    });
    const id = opts.seed === undefined ? `synth-${i}` : `synth-${opts.seed}-${i}`;
    rows.push({
      id,
      dataset: 'synth',
      ...(opts.split ? { split: opts.split } : {}),
      prompt: `What is ${a} plus ${b}?`,
      reference: String(a + b),
      models: outcomes,
    });
  }
  return rows;
}

export function writeSyntheticDataset(opts: SyntheticOptions): { file: string; models: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'cascade-synth-'));
  const file = join(dir, 'synth.jsonl');
  writeFileSync(
    file,
    syntheticRows(opts)
      .map((r) => JSON.stringify(r))
      .join('\n') + '\n',
  );
  return { file, models: syntheticModels(opts.models) };
}
