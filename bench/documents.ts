/**
 * Document-job benchmark: summarize documents of 10, 100 and 1,000 chunks through the real stack
 * (API, router worker and one worker per pool as separate processes, a Temporal dev server, the
 * model farm with zero latency, so the figures are Cascade's own overhead). Reports wall time,
 * time per chunk, RSS of each process while the job ran (peak, and the median of the job's second
 * half), continue-as-new runs, and cost
 * against sending every call to the policy's strongest model.
 *
 *   npm run bench:documents                          (sizes 10,100,1000)
 *   npm run bench:documents -- --sizes 10,100,1000,10000 --concurrency 32
 *
 * Writes bench/documents-results.json (or --out) and prints a Markdown table.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseCli } from '../common/cli.js';
import { fileURLToPath } from 'node:url';
import { startStack, type Stack } from '../test/helpers/stack.js';
import { documentText } from '../test/documents/helpers.js';
import { chunkText } from '../activities/document-chunking.js';

const USAGE = `usage: npm run bench:documents [-- options]

Summarizes documents of each size through the real stack (zero-latency farm).
  --sizes 10,100,1000      chunks per document
  --concurrency 16         chunks in flight
  --chunk-tokens 256       chunk size
  --history-limit 2000     history events before continue-as-new
  --output-tokens 40       tokens per synthetic answer
  --out <file.json>        default bench/documents-results.json`;

const { values } = parseCli(USAGE, {
  options: {
    sizes: { type: 'string', default: '10,100,1000' },
    concurrency: { type: 'string', default: '16' },
    'chunk-tokens': { type: 'string', default: '256' },
    'history-limit': { type: 'string', default: '2000' },
    'output-tokens': { type: 'string', default: '40' },
    out: { type: 'string', default: fileURLToPath(new URL('./documents-results.json', import.meta.url)) },
  },
});
const sizes = values.sizes!.split(',').map(Number);
const chunkTokens = Number(values['chunk-tokens']);
const PROCESSES = ['api', 'router', 'pool:cpu', 'pool:gpu-a', 'pool:api'];

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** A document that chunks into about `chunks` chunks (the server's chunker decides the exact count). */
function documentOf(chunks: number): string {
  const options = { chunkTokens, overlapTokens: Math.round(chunkTokens / 10) };
  let paragraphs = chunks * 4;
  for (let i = 0; i < 3; i++) paragraphs = Math.max(1, Math.round((paragraphs * chunks) / chunkText(documentText(paragraphs, 'bench'), options).length));
  return documentText(paragraphs, 'bench');
}

/** Baseline from the same run: chat requests through the same stack at the same concurrency. */
async function chatThroughput(stack: Stack, concurrency: number, total: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const res = await fetch(`${stack.apiUrl}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-farm-output-tokens': values['output-tokens']! },
        body: JSON.stringify({ model: 'cascade:simulated', messages: [{ role: 'user', content: `baseline request ${i}: ${documentText(1, String(i))}` }] }),
      });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`baseline chat request failed: ${res.status}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return round(total / ((performance.now() - started) / 1000), 1);
}

interface Row {
  chunks: number;
  reduce_steps: number;
  wall_s: number;
  ms_per_chunk: number;
  chunks_per_s: number;
  runs: number;
  escalations: number;
  cost_usd: number;
  baseline_cost_usd: number;
  cost_ratio: number;
  peak_rss_mb: Record<string, number>;
  steady_rss_mb: Record<string, number>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

async function runOne(stack: Stack, target: number): Promise<Row> {
  const text = documentOf(target);
  const pids = Object.fromEntries(PROCESSES.map((n) => [n, stack.child(n).pid!]));
  const samples: Record<string, number[]> = Object.fromEntries(PROCESSES.map((n) => [n, [rssMb(pids[n]!)]]));
  const sampler = setInterval(() => {
    for (const n of PROCESSES) samples[n]!.push(rssMb(pids[n]!));
  }, 100);
  const started = performance.now();
  const res = await fetch(`${stack.apiUrl}/documents`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-farm-output-tokens': values['output-tokens']! },
    body: JSON.stringify({ task: 'summarize', model: 'cascade:simulated', text }),
  });
  const { id } = (await res.json()) as { id: string };
  if (res.status !== 202) throw new Error(`start failed: ${res.status}`);
  let job: any;
  for (;;) {
    job = await (await fetch(`${stack.apiUrl}/documents/${id}`)).json();
    if (['completed', 'cancelled', 'failed'].includes(job.status)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const wall = (performance.now() - started) / 1000;
  clearInterval(sampler);
  if (job.status !== 'completed') throw new Error(`job ${id} ended ${job.status}: ${JSON.stringify(job).slice(0, 300)}`);
  const row: Row = {
    chunks: job.chunks.total,
    reduce_steps: job.reduce_steps_done,
    wall_s: round(wall, 2),
    ms_per_chunk: round((wall * 1000) / job.chunks.total, 1),
    chunks_per_s: round(job.chunks.total / wall, 1),
    runs: job.runs,
    escalations: job.escalations,
    cost_usd: round(job.cost_usd, 6),
    baseline_cost_usd: round(job.baseline_cost_usd, 6),
    cost_ratio: round(job.cost_usd / job.baseline_cost_usd, 3),
    peak_rss_mb: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, round(Math.max(...v), 0)])),
    // Peak RSS depends on when V8 collects; the median of the second half shows the steady state.
    steady_rss_mb: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, round(median(v.slice(Math.floor(v.length / 2))), 0)])),
  };
  process.stderr.write(
    `[bench] ${row.chunks} chunks: ${row.wall_s} s (${row.ms_per_chunk} ms/chunk), runs ${row.runs}, cost ${row.cost_ratio} of all-strongest\n`,
  );
  return row;
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

async function main(): Promise<void> {
  const stack = await startStack({
    routerProcess: true,
    apiProcess: true,
    poolProcesses: ['cpu', 'gpu-a', 'api'],
    configure: (raw) => {
      raw.server.forward_headers.push('x-farm-output-tokens');
      raw.documents.chunk_tokens = chunkTokens;
      raw.documents.overlap_tokens = Math.round(chunkTokens / 10);
      raw.documents.concurrency = Number(values.concurrency);
      raw.documents.history_events_limit = Number(values['history-limit']);
      raw.documents.max_bytes = 64 * 1024 * 1024;
      raw.pools['gpu-a'].concurrency = 64;
      raw.pools.api.concurrency = 64;
      raw.policies.simulated.deadline_ms = 120_000;
      raw.breaker.failure_threshold = 1000;
    },
  });
  const rows: Row[] = [];
  let chatPerS: number;
  try {
    await runOne(stack, 5); // warm-up: workflow bundle, evaluator loading, connections
    chatPerS = await chatThroughput(stack, Number(values.concurrency), Number(values.concurrency) * 10);
    process.stderr.write(`[bench] baseline: ${chatPerS} chat requests/s at concurrency ${values.concurrency}\n`);
    for (const size of sizes) rows.push(await runOne(stack, size));
  } finally {
    await stack.close();
  }
  const out = {
    date: new Date().toISOString(),
    settings: {
      chunk_tokens: chunkTokens,
      concurrency: Number(values.concurrency),
      history_events_limit: Number(values['history-limit']),
      output_tokens: Number(values['output-tokens']),
      farm: 'config/farm.test.yaml (zero latency)',
      policy: 'simulated (sim-small + logprob ≥ 0.6 → sim-large)',
    },
    baseline_chat_requests_per_s: chatPerS,
    rows,
  };
  writeFileSync(values.out!, `${JSON.stringify(out, null, 2)}\n`);
  const lines = [
    '| chunks | combine steps | wall time | per chunk | chunks/s | continue-as-new runs | escalations | cost | all on sim-large | ratio | RSS MB peak (steady): api / router / pool cpu / gpu-a / api |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.chunks} | ${r.reduce_steps} | ${r.wall_s} s | ${r.ms_per_chunk} ms | ${r.chunks_per_s} | ${r.runs} | ${r.escalations} | $${r.cost_usd} | $${r.baseline_cost_usd} | ${r.cost_ratio} | ${PROCESSES.map((p) => `${r.peak_rss_mb[p]} (${r.steady_rss_mb[p]})`).join(' / ')} |`,
    ),
  ];
  lines.push('', `Baseline in the same run: ${chatPerS} chat requests/s through the same stack at the same concurrency (one cascade workflow each).`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench:documents failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
