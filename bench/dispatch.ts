/**
 * `npm run bench:dispatch`: what the request path costs in each dispatch mode, streamed and not.
 * Two stacks on one Temporal dev server (pools `task-queue` / `local`), the zero-latency farm, a
 * direct model call (`model: mixtral`) sent to each in alternating blocks:
 *   c=1   time from the request to the moment the farm sees the upstream call (the durable start
 *         path), to the first content chunk at the client (streaming), and to the whole answer;
 *   c=32  throughput, with `stream: true` (live side channel) and without.
 * Workers run in this process (test/helpers/stack.ts), not one process per role as `npm start`
 * does: compare the modes with each other, and see bench:overhead for the production layout.
 *
 *   npm run bench:dispatch [-- --c1 60 --c32 400 --rounds 2]
 */
import { loadavg } from 'node:os';
import { parseCli } from '../common/cli.js';
import { startStack, type Stack } from '../test/helpers/stack.js';
import { startTemporalDevServer } from '../scripts/temporal-dev-server.js';
import { percentile } from './lib/latency-model.js';
import { sseEvents } from '../common/sse-events.js';

const PROMPT =
  "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?";

const { values: args } = parseCli('usage: npm run bench:dispatch [-- --c1 60 --c32 400 --rounds 2]', {
  options: {
    c1: { type: 'string', default: '60' },
    c32: { type: 'string', default: '400' },
    rounds: { type: 'string', default: '2' },
  },
});

interface Timing {
  startMs: number;
  firstMs: number;
  totalMs: number;
}

/** One request; times relative to its send: upstream call seen by the farm, first content, end. */
async function once(stack: Stack, stream: boolean): Promise<Timing> {
  const t0 = Date.now();
  const res = await fetch(`${stack.apiUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mixtral', stream, messages: [{ role: 'user', content: PROMPT }] }),
  });
  let first = 0;
  if (stream) {
    for await (const { data } of sseEvents(res.body as unknown as AsyncIterable<Uint8Array>)) {
      if (!first && data !== '[DONE]' && (JSON.parse(data) as { choices?: { delta?: { content?: string } }[] }).choices?.[0]?.delta?.content)
        first = Date.now();
    }
  } else await res.arrayBuffer();
  const end = Date.now();
  const workflowId = res.headers.get('x-cascade-workflow-id')!;
  const [call] = (await stack.farmLog()).filter((a) => a.request_id?.startsWith(`${workflowId}/`));
  return { startMs: (call?.t_ms ?? end) - t0, firstMs: (first || end) - t0, totalMs: end - t0 };
}

async function throughput(stack: Stack, stream: boolean, n: number, concurrency: number): Promise<number> {
  let next = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < n) await once(stack, stream);
    }),
  );
  return n / ((Date.now() - t0) / 1000);
}

const temporal = await startTemporalDevServer();
process.env.CASCADE_TEST_TEMPORAL_ADDRESS = temporal.address;
const modes = ['task-queue', 'local'] as const;
const stacks: Record<string, Stack> = {};
for (const mode of modes)
  stacks[mode] = await startStack({
    configure: (raw) => {
      for (const pool of Object.values(raw.pools) as { dispatch?: string; concurrency: number }[]) {
        pool.dispatch = mode;
        pool.concurrency = 64;
      }
    },
  });
const c1 = Number(args.c1);
const c32 = Number(args.c32);
const rounds = Number(args.rounds);
const samples: Record<string, Timing[]> = { 'task-queue': [], local: [] };
const tput: Record<string, { stream: number[]; plain: number[] }> = { 'task-queue': { stream: [], plain: [] }, local: { stream: [], plain: [] } };
const load0 = loadavg()[0]!;
for (const mode of modes) for (let i = 0; i < 10; i++) await once(stacks[mode]!, true); // warm-up
for (let r = 0; r < rounds; r++)
  for (const mode of modes) {
    for (let i = 0; i < c1 / rounds; i++) samples[mode]!.push(await once(stacks[mode]!, true));
    tput[mode]!.plain.push(await throughput(stacks[mode]!, false, c32 / rounds, 32));
    tput[mode]!.stream.push(await throughput(stacks[mode]!, true, c32 / rounds, 32));
  }
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(`bench:dispatch — zero-latency farm, load average ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}, ${rounds} alternating rounds`);
console.log(
  '| dispatch | c=1: to the upstream call p50 / p99 | first content p50 / p99 | whole answer p50 | c=32 req/s, not streamed | c=32 req/s, streamed (ratio) |',
);
console.log('| --- | --: | --: | --: | --: | --: |');
for (const mode of modes) {
  const s = samples[mode]!;
  const p = (f: (t: Timing) => number, q: number) => `${percentile(s.map(f), q).toFixed(0)} ms`;
  const plain = mean(tput[mode]!.plain);
  const streamed = mean(tput[mode]!.stream);
  console.log(
    `| ${mode} | ${p((t) => t.startMs, 50)} / ${p((t) => t.startMs, 99)} | ${p((t) => t.firstMs, 50)} / ${p((t) => t.firstMs, 99)} | ${p((t) => t.totalMs, 50)} | ${plain.toFixed(1)} | ${streamed.toFixed(1)} (×${(streamed / plain).toFixed(2)}) |`,
  );
}
for (const stack of Object.values(stacks)) await stack.close();
await temporal.stop();
process.exit(0);
