/**
 * npm run bench:budgets -- [--n 300] [--block 25]
 *
 * What a key budget adds to a request: the same direct model call (sim-small on the zero-latency
 * farm, one at a time over loopback), with a key that has no budget or limit (no reservation) and
 * with a key that has a budget and a rate limit (one Update on its budget workflow before the
 * cascade starts, one signal from the cascade when it ends). Blocks of each alternate, so both see
 * the same machine load. Reports p50/p99 latency and CPU ms per request of this process (API,
 * router and pool workers) and of the Temporal dev server.
 */
import { randomBytes } from 'node:crypto';
import { parseCli } from '../common/cli.js';
import { percentile } from '../evaluators/train/stats.js';
import { startTemporalDevServer } from '../scripts/temporal-dev-server.js';
import { startStack } from '../test/helpers/stack.js';
import { generateKey, keyIdOf, sha256Hex, writeKeysFile } from '../common/api-keys.js';
import { cpuMs } from './lib/overhead-cpu.js';

const USAGE = `
usage: npm run bench:budgets -- [--n 300] [--block 25]
  --n      requests per key (at most 2000)
  --block  requests per block; blocks of the two keys alternate
`;
const { values } = parseCli(USAGE, { options: { n: { type: 'string', default: '300' }, block: { type: 'string', default: '25' } } });
const N = Math.min(Number(values.n), 2000);
const BLOCK = Math.max(1, Number(values.block));

const temporal = await startTemporalDevServer();
process.env.CASCADE_TEST_TEMPORAL_ADDRESS = temporal.address;
const stack = await startStack({ configure: (raw) => (raw.keys.tiers = { default: {}, metered: {} }) });
const keys = { plain: generateKey(), budgeted: generateKey() };
const entry = (key: string, name: string, tier: string, limits?: object) => ({
  id: keyIdOf(sha256Hex(key)),
  sha256: sha256Hex(key),
  name,
  tier,
  ...(limits && { limits }),
  created_at: new Date().toISOString(),
  revoked_at: null,
});
writeKeysFile(stack.config.keysFilePath, {
  keys: [
    entry(keys.plain, 'no limits', 'default'),
    entry(keys.budgeted, 'budgeted', 'metered', {
      budget_usd: { day: 1000, month: 10000 },
      rate_limit: { requests_per_minute: 100000, tokens_per_minute: 10000000 },
    }),
  ],
});
await new Promise((r) => setTimeout(r, 1100));

const temporalPid = temporal.process.pid!;
async function one(key: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${stack.apiUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: 'sim-small', max_tokens: 5, messages: [{ role: 'user', content: `budget bench ${randomBytes(6).toString('hex')}` }] }),
  });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`status ${res.status}`);
  return performance.now() - started;
}

const samples = { plain: [] as number[], budgeted: [] as number[] };
const cpu = { plain: { self: 0, temporal: 0 }, budgeted: { self: 0, temporal: 0 } };
for (const name of ['plain', 'budgeted'] as const) for (let i = 0; i < 10; i++) await one(keys[name]); // warm-up
for (let done = 0; done < N; done += BLOCK) {
  for (const name of done % (2 * BLOCK) === 0 ? (['plain', 'budgeted'] as const) : (['budgeted', 'plain'] as const)) {
    const self0 = process.cpuUsage();
    const t0 = cpuMs(temporalPid);
    for (let i = 0; i < Math.min(BLOCK, N - done); i++) samples[name].push(await one(keys[name]));
    const self = process.cpuUsage(self0);
    cpu[name].self += (self.user + self.system) / 1000;
    cpu[name].temporal += cpuMs(temporalPid) - t0;
  }
}

const row = (name: 'plain' | 'budgeted') => {
  const sorted = [...samples[name]].sort((a, b) => a - b);
  return {
    p50_ms: +percentile(sorted, 0.5).toFixed(1),
    p99_ms: +percentile(sorted, 0.99).toFixed(1),
    cpu_ms_per_request_cascade: +(cpu[name].self / samples[name].length).toFixed(2),
    cpu_ms_per_request_temporal: +(cpu[name].temporal / samples[name].length).toFixed(2),
  };
};
const plain = row('plain');
const budgeted = row('budgeted');
console.log(`requests per key: ${N}, c=1, blocks of ${BLOCK}`);
console.table({ 'no budget': plain, 'budget + rate limit': budgeted });
console.log(
  `added by the budget: p50 +${(budgeted.p50_ms - plain.p50_ms).toFixed(1)} ms, p99 +${(budgeted.p99_ms - plain.p99_ms).toFixed(1)} ms, ` +
    `CPU +${(budgeted.cpu_ms_per_request_cascade - plain.cpu_ms_per_request_cascade).toFixed(2)} ms (Cascade) ` +
    `+${(budgeted.cpu_ms_per_request_temporal - plain.cpu_ms_per_request_temporal).toFixed(2)} ms (Temporal) per request`,
);
await stack.close();
await temporal.stop();
