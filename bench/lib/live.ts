/**
 * Live mode of the routing benchmark: N prompts through the real stack (API → Temporal → pool
 * workers → a farm replaying the same dataset), and the check that every live decision equals
 * the offline replay's for the same prompt. The stack is the one the end-to-end tests run.
 */
import { basename, dirname, resolve } from 'node:path';
import { defineFarmConfig } from '../../farm/index.js';
import { loadDataset, loadModelPrices, splitOf, type DatasetRow } from '../../common/dataset.js';
import type { CascadeTrace, PolicySpec } from '../../common/types.js';
import { startStack } from '../../test/helpers/stack.js';
import { compareDecisions, type Agreement } from './agreement.js';
import { decisionOf, Replayer, type DecisionRecord } from './replay.js';
import { viewOf } from '../../evaluators/dataset-adapter.js';

export interface LiveOptions {
  data: string;
  policy: PolicySpec;
  split: string;
  /** How many prompts to send (the first N of the split that every ladder model answered). */
  n: number;
  modelsDir?: string;
}

export interface LiveResult {
  agreement: Agreement;
  offline: DecisionRecord[];
  live: DecisionRecord[];
  seconds: number;
}

export async function runLive(opts: LiveOptions): Promise<LiveResult> {
  const started = Date.now();
  const data = resolve(opts.data);
  const all = await loadDataset(data);
  const inSplit = opts.split === 'all' ? all : all.filter((r) => splitOf(r) === opts.split);
  const ladder = opts.policy.steps.map((s) => s.model);
  // The farm can only replay answers that were recorded.
  const rows = inSplit.filter((r) => ladder.every((m) => r.models[m]?.response != null)).slice(0, opts.n);
  if (rows.length === 0) throw new Error(`${opts.data}: no prompt in split "${opts.split}" has a recorded answer from every model of the ladder`);

  const prices = await loadModelPrices(data);
  const replayer = new Replayer(viewOf(inSplit, prices), prices, { modelsDir: opts.modelsDir });
  const offline: DecisionRecord[] = [];
  for (const row of rows) offline.push(await replayer.replay(row, opts.policy));

  const models = Object.values(replayer.models).filter((m) => ladder.includes(m.name));
  // Replay registries may leave the window unbounded; configs need a whole number.
  const windowOf = (w: number) => (Number.isFinite(w) ? Math.floor(w) : 100_000_000);
  const farmConfig = defineFarmConfig({
    host: '127.0.0.1',
    data_root: dirname(data),
    datasets: [basename(data)],
    models: Object.fromEntries(models.map((m) => [m.name, { backend: 'replay', context_window: windowOf(m.contextWindow) }])),
    pools: { replay: { port: 0, concurrency: 32, fallback: null, models: Object.fromEntries(models.map((m) => [m.name, { ttft_ms: 0, tokens_per_s: 0 }])) } },
  });
  const stack = await startStack({
    farmConfig,
    configure: (raw, farmUrl) => {
      raw.pools = { replay: { task_queue: `${raw.temporal.task_queue}-replay`, concurrency: 32 } };
      raw.models = Object.fromEntries(
        models.map((m) => [
          m.name,
          {
            input_usd_per_1m: m.inputUsdPer1M,
            output_usd_per_1m: m.outputUsdPer1M,
            context_window: windowOf(m.contextWindow),
            deployments: [{ pool: 'replay', base_url: farmUrl('replay') }],
          },
        ]),
      );
      const { name, ...policy } = opts.policy;
      raw.policies = { [name]: { ...policy, deadline_ms: 120_000 } };
      raw.default_policy = name;
      raw.server.max_body_bytes = 8 << 20;
      raw.server.forward_headers = ['x-replay-id'];
      raw.breaker.failure_threshold = 1_000_000;
    },
  });
  try {
    const live: DecisionRecord[] = [];
    for (const row of rows) live.push(await ask(stack.apiUrl, opts.policy.name, row));
    return { agreement: compareDecisions(offline, live), offline, live, seconds: (Date.now() - started) / 1000 };
  } finally {
    await stack.close();
  }
}

async function ask(apiUrl: string, policy: string, row: DatasetRow): Promise<DecisionRecord> {
  const res = await fetch(`${apiUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-replay-id': row.id },
    body: JSON.stringify({ model: `cascade:${policy}`, messages: [{ role: 'user', content: row.prompt }] }),
  });
  const body = (await res.json()) as { model?: string; cascade?: CascadeTrace; error?: { message: string; cascade?: CascadeTrace } };
  if (res.ok && body.cascade) return decisionOf(row, body.cascade, body.model ?? null);
  if (body.error?.cascade) return decisionOf(row, body.error.cascade, null);
  throw new Error(`${row.id}: ${res.status} ${body.error?.message ?? 'no cascade trace'}`);
}
