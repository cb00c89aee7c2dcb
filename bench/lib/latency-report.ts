/**
 * What the live latency bench makes of its requests: one record per request (the client's timings
 * joined with the farm's attempt log), one summary per policy × concurrency with shares of
 * always-strong measured in the same run, the targets as PASS/MISS, a table and a plot.
 * Pure functions.
 */
import type { Attempt } from '../../farm/index.js';
import { percentile } from '../../evaluators/train/stats.js';
import type { StreamTiming } from './latency-client.js';
import type { BenchPrompt } from './latency-prompts.js';
import type { PoolTiming } from './latency-stack.js';

export interface RequestRecord {
  id: string;
  ttftMs: number | null;
  totalMs: number;
  error: string | null;
  model: string | null;
  costUsd: number;
  /** Quality (0–1) of the recorded answer of the model that answered; 0 when none did. */
  quality: number;
  escalated: boolean;
  stoppedEarly: boolean;
  /** The trace records a hedge (a step started alongside the one before it). */
  hedged: boolean;
  /** Two models generated at once for this request (the farm log's attempts overlap): the hedge as the upstreams saw it. */
  parallelUpstream: boolean;
  /** The answer is not the farm's recording of the model that returned it (should never happen). */
  notRecorded: boolean;
  /** The farm attempt whose answer was returned: send → its arrival, and its configured first-token time. */
  upstream: { arrivalMs: number; ttftMs: number } | null;
}

export function recordOf(p: BenchPrompt, t: StreamTiming, attempts: Attempt[], timings: Record<string, Record<string, PoolTiming>>): RequestRecord {
  const trace = t.trace;
  const ok = t.error === null && t.model !== null;
  const recorded = t.model ? p.row.models[t.model]?.response : undefined;
  const answering = ok ? attempts.filter((a) => a.model === t.model && a.outcome === 'ok').at(-1) : undefined;
  const ttftOf = (a: Attempt) => timings[a.pool]?.[a.model ?? '']?.ttft_ms ?? 0;
  return {
    id: p.row.id,
    ttftMs: t.ttftMs,
    totalMs: t.totalMs,
    error: t.error,
    model: t.model,
    costUsd: trace?.cost_usd ?? 0,
    quality: ok ? (p.quality[t.model!] ?? 0) : 0,
    escalated: (trace?.escalations ?? 0) > 0,
    stoppedEarly: trace?.attempts.some((a) => a.stopped_early) ?? false,
    hedged: (trace?.hedges?.length ?? 0) > 0,
    parallelUpstream: overlapping(attempts),
    notRecorded: ok && recorded !== t.content,
    upstream: answering ? { arrivalMs: answering.t_ms - t.sentAt, ttftMs: ttftOf(answering) } : null,
  };
}

/** Two attempts of different models that ran at the same time. */
function overlapping(attempts: Attempt[]): boolean {
  const end = (a: Attempt) => a.end_ms ?? Infinity;
  return attempts.some((a) => attempts.some((b) => a.model !== b.model && a.t_ms < end(b) && b.t_ms < end(a)));
}

export interface PhaseSummary {
  policy: string;
  concurrency: number;
  requests: number;
  errors: number;
  wall_s: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
  latency_p50_ms: number;
  latency_p99_ms: number;
  cost_per_request_usd: number;
  quality: number;
  /** Shares of always-strong at the same concurrency, same run; null when it was not run. */
  cost_share_of_strong: number | null;
  quality_share_of_strong: number | null;
  latency_p50_ratio_to_strong: number | null;
  latency_p99_ratio_to_strong: number | null;
  escalation_rate: number;
  early_stop_rate: number;
  hedge_rate: number;
  parallel_upstream_rate: number;
  not_recorded_answers: number;
  /** Where the first-token time goes (answers with a farm attempt): p50s in ms. */
  ttft_breakdown: { to_upstream_p50_ms: number; upstream_ttft_ms: number; after_upstream_first_token_p50_ms: number } | null;
}

const p = (xs: number[], q: number) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    q,
  );
const share = (xs: boolean[]) => xs.filter(Boolean).length / Math.max(1, xs.length);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

export function summarisePhase(policy: string, concurrency: number, records: RequestRecord[], wallMs: number): PhaseSummary {
  const ok = records.filter((r) => r.error === null);
  const ttfts = ok.map((r) => r.ttftMs).filter((v): v is number => v !== null);
  const up = ok.filter((r) => r.upstream && r.ttftMs !== null);
  return {
    policy,
    concurrency,
    requests: records.length,
    errors: records.length - ok.length,
    wall_s: wallMs / 1000,
    ttft_p50_ms: p(ttfts, 0.5),
    ttft_p99_ms: p(ttfts, 0.99),
    latency_p50_ms: p(
      ok.map((r) => r.totalMs),
      0.5,
    ),
    latency_p99_ms: p(
      ok.map((r) => r.totalMs),
      0.99,
    ),
    cost_per_request_usd: mean(records.map((r) => r.costUsd)),
    quality: mean(records.map((r) => r.quality)),
    cost_share_of_strong: null,
    quality_share_of_strong: null,
    latency_p50_ratio_to_strong: null,
    latency_p99_ratio_to_strong: null,
    escalation_rate: share(records.map((r) => r.escalated)),
    early_stop_rate: share(records.map((r) => r.stoppedEarly)),
    hedge_rate: share(records.map((r) => r.hedged)),
    parallel_upstream_rate: share(records.map((r) => r.parallelUpstream)),
    not_recorded_answers: records.filter((r) => r.notRecorded).length,
    ttft_breakdown: up.length
      ? {
          to_upstream_p50_ms: p(
            up.map((r) => r.upstream!.arrivalMs),
            0.5,
          ),
          upstream_ttft_ms: p(
            up.map((r) => r.upstream!.ttftMs),
            0.5,
          ),
          // The farm's first-token delay has symmetric jitter around the configured value, so at the median this is what follows it.
          after_upstream_first_token_p50_ms: p(
            up.map((r) => r.ttftMs! - r.upstream!.arrivalMs - r.upstream!.ttftMs),
            0.5,
          ),
        }
      : null,
  };
}

export interface Phase {
  summary: PhaseSummary;
  records: RequestRecord[];
}

/**
 * Fills in the shares and latency ratios of always-strong measured at the same concurrency, over
 * the prompts both phases sent (a phase cut short by the time budget sent fewer), so a ratio never
 * compares different prompts.
 */
export function relateToStrong(phases: Phase[], strong: string): void {
  for (const { summary: s, records } of phases) {
    const base = phases.find((b) => b.summary.policy === strong && b.summary.concurrency === s.concurrency);
    if (!base) continue;
    const baseById = new Map(base.records.map((r) => [r.id, r]));
    const common = records.filter((r) => baseById.has(r.id));
    if (common.length === 0) continue;
    const sum = (rs: RequestRecord[], f: (r: RequestRecord) => number) => rs.reduce((a, r) => a + f(r), 0);
    const baseCommon = common.map((r) => baseById.get(r.id)!);
    s.cost_share_of_strong = sum(common, (r) => r.costUsd) / sum(baseCommon, (r) => r.costUsd);
    s.quality_share_of_strong = sum(common, (r) => r.quality) / sum(baseCommon, (r) => r.quality);
    const totals = (rs: RequestRecord[]) => rs.filter((r) => r.error === null).map((r) => r.totalMs);
    s.latency_p50_ratio_to_strong = p(totals(common), 0.5) / p(totals(baseCommon), 0.5);
    s.latency_p99_ratio_to_strong = p(totals(common), 0.99) / p(totals(baseCommon), 0.99);
  }
}

export interface TargetCheck {
  target: string;
  concurrency: number;
  measured: string;
  pass: boolean | null;
}

/** The targets (#10, "Targets") on this run's figures; pass is null when a phase it needs did not run. */
export function checkTargets(phases: PhaseSummary[], strong: string, speed: string): TargetCheck[] {
  const out: TargetCheck[] = [];
  const find = (policy: string, c: number) => phases.find((s) => s.policy === policy && s.concurrency === c);
  const s1 = find(strong, 1);
  const b = s1?.ttft_breakdown;
  out.push({
    target: `TTFT p50 of a live-streamed answer (${strong}) ≤ upstream first-token time + 50 ms`,
    concurrency: 1,
    measured:
      s1 && b
        ? `${ms(s1.ttft_p50_ms)} vs ${ms(b.upstream_ttft_ms)} + 50 (send→upstream ${ms(b.to_upstream_p50_ms)}, upstream first token→client ${ms(b.after_upstream_first_token_p50_ms)})`
        : 'not run',
    pass: s1 && b ? s1.ttft_p50_ms <= b.upstream_ttft_ms + 50 : null,
  });
  for (const c of [...new Set(phases.map((s) => s.concurrency))]) {
    const sp = find(speed, c);
    const st = find(strong, c);
    const ok = sp && st && sp.cost_share_of_strong !== null;
    const checks: [string, (a: PhaseSummary) => string, (a: PhaseSummary) => boolean][] = [
      ['total P50 ≤ 0.7 × always-strong', (a) => `×${fix(a.latency_p50_ratio_to_strong, 2)} on the same prompts`, (a) => a.latency_p50_ratio_to_strong! <= 0.7],
      ['total P99 ≤ always-strong', (a) => `×${fix(a.latency_p99_ratio_to_strong, 2)} on the same prompts`, (a) => a.latency_p99_ratio_to_strong! <= 1],
      ['cost ≤ 50% of always-strong', (a) => pct(a.cost_share_of_strong), (a) => a.cost_share_of_strong! <= 0.5],
      ['quality ≥ 98% of always-strong', (a) => pct(a.quality_share_of_strong), (a) => a.quality_share_of_strong! >= 0.98],
    ];
    for (const [name, measured, pass] of checks)
      out.push({ target: `${speed}: ${name}`, concurrency: c, measured: ok ? measured(sp) : 'not run', pass: ok ? pass(sp) : null });
  }
  return out;
}

const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v)} ms` : 'n/a');
const fix = (v: number | null, d: number) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
const pct = (v: number | null) => (v === null || !Number.isFinite(v) ? 'n/a' : `${(v * 100).toFixed(1)}%`);

export function markdownTable(phases: PhaseSummary[]): string {
  const lines = [
    '| policy | c | TTFT p50 | TTFT p99 | total p50 | total p99 | cost (share of strong) | quality (share of strong) | escalated | early stop | hedged | errors |',
    '| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |',
    ...phases.map(
      (s) =>
        `| ${s.policy} | ${s.concurrency} | ${ms(s.ttft_p50_ms)} | ${ms(s.ttft_p99_ms)} | ${ms(s.latency_p50_ms)} | ${ms(s.latency_p99_ms)} | ${pct(s.cost_share_of_strong)} | ${pct(s.quality_share_of_strong)} | ${pct(s.escalation_rate)} | ${pct(s.early_stop_rate)} | ${pct(s.hedge_rate)} | ${s.errors}/${s.requests} |`,
    ),
  ];
  return lines.join('\n') + '\n';
}

export function targetLines(checks: TargetCheck[]): string {
  return checks.map((t) => `${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'MISS'}  c=${t.concurrency}  ${t.target}: ${t.measured}`).join('\n') + '\n';
}

/**
 * A warning when the time scale is so small that the router's fixed cost (send → upstream arrival,
 * which does not scale) is a large part of always-strong's total: latency ratios then measure the
 * router's overhead more than the policies.
 */
export function scaleWarning(phases: PhaseSummary[], strong: string): string | null {
  const s = phases.find((p) => p.policy === strong && p.concurrency === 1) ?? phases.find((p) => p.policy === strong);
  const fixed = s?.ttft_breakdown?.to_upstream_p50_ms;
  if (!s || fixed === undefined || fixed < 0.2 * s.latency_p50_ms) return null;
  return `note: at this time scale the path to the upstream (${ms(fixed)} p50, not scaled) is ${pct(fixed / s.latency_p50_ms)} of always-strong's total p50 (c=${s.concurrency}); latency ratios are dominated by fixed overhead, a larger --time-scale shows the policies better`;
}
