/**
 * npm run usage -- [--from 2026-12-01] [--to <ISO time>] [--key key_…] [--policy default] [--by policy|key] [--url http://127.0.0.1:8080]
 *
 * Prints GET /v1/usage as a table: one row per policy (or key), then the total. The API key is
 * taken from CASCADE_API_KEY, else the first of CASCADE_API_KEYS.
 */
import { parseArgs } from 'node:util';
import type { UsageTotals } from '../common/usage.js';

const { values } = parseArgs({
  options: {
    from: { type: 'string' },
    to: { type: 'string' },
    key: { type: 'string' },
    policy: { type: 'string' },
    by: { type: 'string', default: 'policy' },
    url: { type: 'string', default: process.env.CASCADE_API_URL ?? `http://127.0.0.1:${process.env.PORT ?? 8080}` },
  },
});

interface UsageResponse {
  from: string;
  to: string;
  totals: UsageTotals;
  by_policy: Record<string, UsageTotals>;
  by_key: Record<string, UsageTotals>;
  error?: { message: string };
}

const usd = (x: number) => `$${x.toFixed(x >= 1 ? 2 : 6)}`;
const COLUMNS: [string, (t: UsageTotals) => string][] = [
  ['requests', (t) => String(t.requests)],
  ['answered', (t) => String(t.answered)],
  ['failed', (t) => String(t.failed)],
  ['model calls', (t) => String(t.calls)],
  ['cost', (t) => usd(t.cost_usd)],
  ['on top model', (t) => usd(t.top_model_cost_usd)],
  ['saved', (t) => `${usd(t.savings_usd)}${t.top_model_cost_usd > 0 ? ` (${((100 * t.savings_usd) / t.top_model_cost_usd).toFixed(0)}%)` : ''}`],
  ['escalated', (t) => `${(100 * t.escalation_rate).toFixed(1)}%`],
];

function usageTable(body: UsageResponse, by: 'policy' | 'key'): string {
  const groups = by === 'key' ? body.by_key : body.by_policy;
  const rows = [[by, ...COLUMNS.map(([name]) => name)], ...Object.entries(groups).map(([name, t]) => [name, ...COLUMNS.map(([, f]) => f(t))])];
  rows.push(['total', ...COLUMNS.map(([, f]) => f(body.totals))]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [`usage ${body.from} → ${body.to}`, line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

async function main(): Promise<number> {
  if (values.by !== 'policy' && values.by !== 'key') throw new Error('--by must be policy or key');
  const qs = new URLSearchParams(
    Object.entries({ from: values.from, to: values.to, key: values.key, policy: values.policy }).filter((e): e is [string, string] => !!e[1]),
  );
  const key = process.env.CASCADE_API_KEY ?? process.env.CASCADE_API_KEYS?.split(',')[0]?.trim();
  const res = await fetch(`${values.url.replace(/\/$/, '')}/v1/usage?${qs}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  const body = (await res.json()) as UsageResponse;
  if (!res.ok) {
    console.error(`usage: HTTP ${res.status}: ${body.error?.message ?? JSON.stringify(body)}`);
    return 1;
  }
  console.log(usageTable(body, values.by));
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`usage: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
