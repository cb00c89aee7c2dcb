/**
 * Synthetic datasets in the shared schema where the right routing is known: each model answers an
 * addition and shows it; a wrong answer shows wrong arithmetic, so the arithmetic evaluator is a
 * perfect judge and calibration has a known optimum.
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
}

export function writeSyntheticDataset(opts: SyntheticOptions): { file: string; models: string[] } {
  const rand = seededRandom(42);
  const acc = opts.accuracy ?? ((k, n) => 0.55 + (0.4 * k) / Math.max(1, n - 1));
  const models = Array.from({ length: opts.models }, (_, k) => `synth/model-${String.fromCharCode(97 + k)}`);
  const lines: string[] = [];
  for (let i = 0; i < opts.rows; i++) {
    const a = 10 + Math.floor(rand() * 90);
    const b = 10 + Math.floor(rand() * 90);
    const outcomes: Record<string, unknown> = {};
    models.forEach((m, k) => {
      const correct = rand() < acc(k, opts.models);
      const shown = correct ? a + b : a + b + 1 + Math.floor(rand() * 5);
      const price = 10 ** (k / 2); // different price scales: $1 ... per 1M tokens
      const tokens = 50;
      outcomes[m] = {
        response: `We add the two numbers: ${a} + ${b} = ${shown}.\n#### ${shown}`,
        ...(opts.graded ? { score: correct ? 9 : 3 } : { correct }),
        input_tokens: 40,
        output_tokens: 10,
        cost_usd: (tokens * price) / 1e6,
      };
    });
    lines.push(JSON.stringify({ id: `synth-${i}`, dataset: 'synth', prompt: `What is ${a} plus ${b}?`, reference: String(a + b), models: outcomes }));
  }
  const dir = mkdtempSync(join(tmpdir(), 'cascade-synth-'));
  const file = join(dir, 'synth.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  return { file, models };
}
