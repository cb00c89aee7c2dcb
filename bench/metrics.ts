/**
 * npm run bench:metrics -- [--n 2000]
 *
 * What Prometheus metrics add to a request (target ≤ 1 ms p50): the same express route, with and
 * without the API's metrics middleware, called one request at a time over loopback (in random
 * order per round, so both see the same machine load), answering a realistic completion with a
 * two-step trace. Reports wall time and CPU time per request (client and server share this
 * process; the CPU difference is the middleware's own work, which on a crowded machine is what
 * the wall time multiplies), and the pool workers' interceptor timed directly.
 */
import express from 'express';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { createRegistry } from '../common/metrics.js';
import { loadConfig } from '../config/load.js';
import { ApiMetrics } from '../server/metrics.js';
import { poolMetricsInterceptor } from '../workers/metrics.js';
import { percentile } from '../evaluators/train/stats.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '2000' } } });
const N = Math.min(Number(values.n), 20_000);
const config = loadConfig();
const [cheap, strong] = config.policies.get('default')!.steps.map((s) => s.model);
const result = {
  requestHash: 'x',
  content: 'The answer is 18.',
  finishReason: 'stop',
  model: strong!,
  usage: { prompt_tokens: 120, completion_tokens: 80, total_tokens: 200 },
  logprobs: null,
  cascade: {
    workflow_id: 'chat-bench',
    policy: 'default',
    final_step: 2,
    escalations: 1,
    cost_usd: 0.0051,
    attempts: [
      {
        step: 1,
        model: cheap!,
        pool: 'cpu',
        deployment: `${cheap}@cpu`,
        latency_ms: 900,
        confidence: 0.31,
        accepted: false,
        error: null,
        cost_usd: 0.0001,
        retries: 1,
      },
      { step: 2, model: strong!, pool: 'api', deployment: `${strong}@api`, latency_ms: 1500, confidence: null, accepted: true, error: null, cost_usd: 0.005 },
    ],
  },
};

const metrics = new ApiMetrics(createRegistry('bench', { processMetrics: false }), config);
const app = express();
app.use(express.json());
const answer: express.RequestHandler = (_req, res) => {
  res.locals.cascadeResult = result;
  res.json({ ...result, cascade: result.cascade });
};
app.post('/with', metrics.middleware(), answer);
app.post('/without', answer);
const server = createServer(app);
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const body = JSON.stringify({ model: 'cascade', messages: [{ role: 'user', content: 'hi' }] });

const times: Record<'with' | 'without', number[]> = { with: [], without: [] };
const cpuUs: Record<'with' | 'without', number> = { with: 0, without: 0 };
for (let i = 0; i < N + 200; i++) {
  for (const path of Math.random() < 0.5 ? (['with', 'without'] as const) : (['without', 'with'] as const)) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await (await fetch(`${base}/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).arrayBuffer();
    // The close handler (where the metrics are recorded) runs right after the response ends.
    await new Promise((r) => setImmediate(r));
    const c = process.cpuUsage(c0);
    if (i < 200) continue; // warm-up
    times[path].push(performance.now() - t0);
    cpuUs[path] += c.user + c.system;
  }
}
server.close();

const interceptor = poolMetricsInterceptor(createRegistry('bench-pool', { processMetrics: false }), 'cpu');
const ctx = { info: { currentAttemptScheduledTimestampMs: Date.now(), attempt: 1, activityType: 'generate' } } as never;
const calls: number[] = [];
for (let i = 0; i < N; i++) {
  const t0 = performance.now();
  await interceptor(ctx).inbound!.execute!({ args: [{ model: cheap }], headers: {} }, async () => 'ok');
  calls.push(performance.now() - t0);
}

for (const xs of [times.with, times.without, calls]) xs.sort((a, b) => a - b);
const p = (xs: number[], q: number) => percentile(xs, q).toFixed(3);
console.log(
  `requests: ${N} each, one at a time, loopback; load average ${(await import('node:os')).loadavg()[0]!.toFixed(1)} on ${(await import('node:os')).cpus().length} CPUs`,
);
console.log(`| | p50 ms | p99 ms |\n| --- | --: | --: |`);
console.log(`| without metrics | ${p(times.without, 0.5)} | ${p(times.without, 0.99)} |`);
console.log(`| with the API's metrics | ${p(times.with, 0.5)} | ${p(times.with, 0.99)} |`);
console.log(`| added at the API (p50 difference) | ${(percentile(times.with, 0.5) - percentile(times.without, 0.5)).toFixed(3)} | |`);
console.log(`| CPU per request without / with metrics (ms) | ${(cpuUs.without / N / 1000).toFixed(3)} / ${(cpuUs.with / N / 1000).toFixed(3)} | |`);
console.log(`| pool worker interceptor, per model call | ${p(calls, 0.5)} | ${p(calls, 0.99)} |`);
