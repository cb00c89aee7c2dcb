/**
 * `npm run bench:overhead -- --metrics-ab`: what Prometheus metrics cost on the durable path. The
 * stack runs its two API processes alike except that the second has CASCADE_METRICS=off (no
 * middleware, no /metrics); the same cascade request is sent straight to each process's own port,
 * in alternating blocks, at concurrency 1 and 32. Prints p50/p99 of each, the difference (target:
 * ≤ 1 ms p50), and each API process's CPU per request. The blocks alternate A-B, B-A; run it with
 * `--metrics-ab-off 1` and 2, so that what differs between the two processes cancels out.
 */
import OpenAI from 'openai';
import { loadavg } from 'node:os';
import type { CascadeStack } from '../../scripts/lib/stack.js';
import { runLoad, summarise, type CallResult, type LoadResult } from './overhead-load.js';
import { snapshot } from './overhead-cpu.js';

/** The environment of API process i when process `off` (1 or 2) runs without metrics. */
export const metricsAbApiEnv =
  (off: number) =>
  (i: number): NodeJS.ProcessEnv =>
    i === off ? { CASCADE_METRICS: 'off' } : {};

/** Which API process runs with metrics and which without: `--metrics-ab-off` swaps them, so a run of each cancels what differs between the two processes. */
const sidesOf = (off: number) =>
  [
    { name: 'metrics on', api: `api#${3 - off}` },
    { name: 'metrics off', api: `api#${off}` },
  ] as const;

export async function runMetricsAb(
  stack: CascadeStack,
  o: {
    messages: { role: 'user'; content: string }[];
    phases: (readonly [number, number])[];
    rounds: number;
    warmup: number;
    maxMs: number;
    /** The API process (1 or 2) that runs without metrics. */
    off: number;
    log: (s: string) => void;
  },
): Promise<string> {
  const SIDES = sidesOf(o.off);
  const calls = SIDES.map(({ api }) => {
    const baseURL = stack.apiUrls.get(api);
    if (!baseURL) throw new Error(`${api} reported no port (the config must run 2 API processes)`);
    const client = new OpenAI({ baseURL, apiKey: 'bench', maxRetries: 0, timeout: 30_000 });
    return async (): Promise<CallResult> => {
      const { data, response } = await client.chat.completions.create({ model: 'cascade', messages: o.messages }).withResponse();
      if ((data as unknown as { cascade: { final_step: number } }).cascade.final_step !== 1) throw new Error('the cascade did not accept step 1');
      return { workflowId: response.headers.get('x-cascade-workflow-id') };
    };
  });
  const scrape = await fetch(stack.apiUrls.get(SIDES[1].api)!.replace(/\/v1$/, '/metrics'));
  if (scrape.status !== 404) throw new Error(`${SIDES[1].api} should have no /metrics with CASCADE_METRICS=off (got ${scrape.status})`);
  const loadStart = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  for (const call of calls) await runLoad({ concurrency: 1, requests: o.warmup, maxMs: o.maxMs, call });
  const lines = [
    '| c | | requests | p50 ms | p99 ms | API process CPU ms / request | all processes CPU ms / request |',
    '| --: | --- | --: | --: | --: | --: | --: |',
  ];
  const diffs: string[] = [];
  for (const [concurrency, requests] of o.phases) {
    const merged = SIDES.map((): LoadResult => ({ samples: [], wallMs: 0 }));
    const cpu = SIDES.map(() => ({ api: 0, all: 0 }));
    for (let round = 0; round < o.rounds; round++)
      // A-B, B-A, ...: neither side always runs first in its round.
      for (const i of round % 2 === 0 ? [0, 1] : [1, 0]) {
        const side = SIDES[i]!;
        o.log(`metrics A/B c=${concurrency} ${side.name}: block ${round + 1}/${o.rounds} ...`);
        const before = snapshot(stack.pids());
        const r = await runLoad({ concurrency, requests: Math.ceil(requests / o.rounds), maxMs: o.maxMs / o.rounds, call: calls[i]! });
        const after = snapshot(stack.pids());
        merged[i]!.samples.push(...r.samples);
        merged[i]!.wallMs += r.wallMs;
        for (const [name, end] of after) {
          const used = end - (before.get(name) ?? NaN);
          if (!Number.isFinite(used)) continue;
          cpu[i]!.all += used;
          if (name === side.api) cpu[i]!.api += used;
        }
      }
    const stats = merged.map((m) => summarise(m));
    for (const [i, side] of SIDES.entries()) {
      const n = Math.max(1, merged[i]!.samples.length);
      const errors = merged[i]!.samples.filter((s) => s.error).length;
      lines.push(
        `| ${concurrency} | ${side.name} (${side.api}) | ${n}${errors ? ` (${errors} errors)` : ''} | ${stats[i]!.p50.toFixed(1)} | ${stats[i]!.p99.toFixed(1)} | ${(cpu[i]!.api / n).toFixed(2)} | ${(cpu[i]!.all / n).toFixed(2)} |`,
      );
    }
    const per = (i: number, k: 'api' | 'all') => cpu[i]![k] / Math.max(1, merged[i]!.samples.length);
    diffs.push(
      `c=${concurrency}: metrics add ${(stats[0]!.p50 - stats[1]!.p50).toFixed(2)} ms p50 (target ≤ 1 ms), ${(stats[0]!.p99 - stats[1]!.p99).toFixed(1)} ms p99, ` +
        `${(per(0, 'api') - per(1, 'api')).toFixed(2)} ms CPU in the API process per request (${(per(0, 'all') - per(1, 'all')).toFixed(2)} ms all processes)`,
    );
  }
  return [
    `Prometheus metrics on the durable path (cascade, step 1 accepted), the two API processes of one stack, alternating blocks of ${o.rounds} rounds; load average ${loadStart} → ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
    '',
    ...lines,
    '',
    ...diffs,
    '',
  ].join('\n');
}
