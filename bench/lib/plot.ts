/** Cost–quality plot (SVG, no dependencies) and the markdown table of a routing benchmark report. */
import type { RoutingReport } from './run.js';
import type { LatencyStats } from './latency-model.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const short = (m: string) => m.split('/').pop()!;

export function costQualitySvg(r: RoutingReport): string {
  const W = 720;
  const H = 480;
  const pad = { l: 70, r: 20, t: 40, b: 56 };
  const pts = [...r.sweep, ...r.baselines.single, r.baselines.oracle, r.policy_result];
  const maxC = Math.max(...pts.map((p) => p.cost)) * 1.05 || 1;
  const qs = pts.map((p) => p.quality);
  const minQ = Math.min(...qs);
  const maxQ = Math.max(...qs);
  const qPad = (maxQ - minQ) * 0.08 || 0.05;
  const x = (c: number) => pad.l + (c / maxC) * (W - pad.l - pad.r);
  const y = (q: number) => H - pad.b - ((q - (minQ - qPad)) / (maxQ - minQ + 2 * qPad)) * (H - pad.t - pad.b);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(`${r.dataset} (${r.split}, ${r.requests} prompts): ${r.policy}`)}</text>`);
  // Axes and ticks.
  out.push(
    `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="#333"/><line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#333"/>`,
  );
  for (let i = 0; i <= 5; i++) {
    const c = (maxC * i) / 5;
    const q = minQ - qPad + ((maxQ - minQ + 2 * qPad) * i) / 5;
    out.push(`<text x="${x(c)}" y="${H - pad.b + 16}" text-anchor="middle">${c.toPrecision(2)}</text>`);
    out.push(`<text x="${pad.l - 6}" y="${y(q) + 4}" text-anchor="end">${q.toFixed(3)}</text>`);
    out.push(`<line x1="${pad.l}" y1="${y(q)}" x2="${W - pad.r}" y2="${y(q)}" stroke="#eee"/>`);
  }
  out.push(`<text x="${W / 2}" y="${H - 14}" text-anchor="middle">cost per request (USD)</text>`);
  out.push(`<text transform="translate(16 ${H / 2}) rotate(-90)" text-anchor="middle">${r.label_kind === 'binary' ? 'accuracy' : 'mean score'}</text>`);
  // Random mixing between the cheapest and the best model.
  const { cheapest, best } = r.baselines;
  out.push(`<line x1="${x(cheapest.cost)}" y1="${y(cheapest.quality)}" x2="${x(best.cost)}" y2="${y(best.quality)}" stroke="#999" stroke-dasharray="5 4"/>`);
  // Threshold sweep.
  const sweep = [...r.sweep].sort((a, b) => a.cost - b.cost);
  out.push(
    `<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="${sweep.map((p) => `${x(p.cost).toFixed(1)},${y(p.quality).toFixed(1)}`).join(' ')}"/>`,
  );
  for (const p of sweep) out.push(`<circle cx="${x(p.cost).toFixed(1)}" cy="${y(p.quality).toFixed(1)}" r="2" fill="#1f77b4"/>`);
  for (const s of r.baselines.single) {
    out.push(`<rect x="${x(s.cost) - 5}" y="${y(s.quality) - 5}" width="10" height="10" fill="#d62728"/>`);
    // Labels near the right edge go to the left of their marker.
    const right = x(s.cost) > W - 180;
    out.push(
      `<text x="${x(s.cost) + (right ? -8 : 8)}" y="${y(s.quality) + (right ? 18 : 4)}"${right ? ' text-anchor="end"' : ''}>${esc(short(s.model))}</text>`,
    );
  }
  const o = r.baselines.oracle;
  out.push(
    `<polygon points="${x(o.cost)},${y(o.quality) - 7} ${x(o.cost) + 7},${y(o.quality)} ${x(o.cost)},${y(o.quality) + 7} ${x(o.cost) - 7},${y(o.quality)}" fill="#2ca02c"/><text x="${x(o.cost) + 10}" y="${y(o.quality) + 4}">oracle</text>`,
  );
  const p = r.policy_result;
  out.push(
    `<circle cx="${x(p.cost)}" cy="${y(p.quality)}" r="7" fill="none" stroke="#ff7f0e" stroke-width="3"/><text x="${x(p.cost) + 10}" y="${y(p.quality) - 8}">calibrated policy</text>`,
  );
  // Legend.
  const ly = pad.t + 8;
  out.push(
    `<line x1="${W - 250}" y1="${ly}" x2="${W - 225}" y2="${ly}" stroke="#1f77b4" stroke-width="2"/><text x="${W - 220}" y="${ly + 4}">threshold sweep (cascade)</text>`,
  );
  out.push(
    `<line x1="${W - 250}" y1="${ly + 18}" x2="${W - 225}" y2="${ly + 18}" stroke="#999" stroke-dasharray="5 4"/><text x="${W - 220}" y="${ly + 22}">random mixing</text>`,
  );
  out.push('</svg>');
  return out.join('\n') + '\n';
}

const f = (v: number | null | undefined, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? 'n/a' : v.toFixed(d));
const usd = (v: number) => `$${v.toPrecision(3)}`;

const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const lat = (l: LatencyStats | null) =>
  l ? `${secs(l.latency_p50_ms)} / ${secs(l.latency_p99_ms)} | ${secs(l.ttft_p50_ms)} / ${secs(l.ttft_p99_ms)}` : '— | —';

export function markdownTable(r: RoutingReport): string {
  const s = r.summary;
  const lines = [
    `### ${r.dataset} — ${r.split} split, ${r.requests} prompts, policy \`${r.policy}\``,
    '',
    `Ladder: ${r.ladder.map((l) => `${short(l.model)} (${l.evaluator}${l.threshold !== null ? ` ≥ ${f(l.threshold)}` : ''})`).join(' → ')}${r.prerouter ? `; pre-router skip below ${r.prerouter.skip_below}` : ''}`,
    '',
    '| router | quality | share of best | cost / request | cost share of best | latency p50 / p99 | TTFT p50 / p99 |',
    '|---|---|---|---|---|---|---|',
    `| **calibrated cascade** | ${f(s.quality)} | ${f(s.quality_share_of_best)} | ${usd(s.cost_per_request_usd)} | ${f(s.cost_share_of_best)} | ${lat(r.latency.policy)} |`,
    ...r.baselines.single.map(
      (b) =>
        `| ${short(b.model)} only | ${f(b.quality)} | ${f(b.quality / r.baselines.best.quality)} | ${usd(b.cost)} | ${f(b.cost / r.baselines.best.cost)} | ${lat(r.latency.single[b.model] ?? null)} |`,
    ),
    `| random router, same cost | ${f(r.random_at_same_cost)} | ${f(r.random_at_same_cost / r.baselines.best.quality)} | ${usd(s.cost_per_request_usd)} | ${f(s.cost_share_of_best)} | — | — |`,
    `| oracle | ${f(r.baselines.oracle.quality)} | ${f(r.baselines.oracle.quality / r.baselines.best.quality)} | ${usd(r.baselines.oracle.cost)} | ${f(r.baselines.oracle.cost / r.baselines.best.cost)} | — | — |`,
    '',
    'Latency is simulated: recorded per-call latency where the data has it, else the farm timing model (config/farm.yaml); an answer needing no evaluation streams from its first token, an evaluated one is shown once accepted.',
    '',
    '| metric | value |',
    '|---|---|',
    `| escalation rate | ${f(s.escalation_rate)} |`,
    `| false-accept rate (accepted early, not good enough) | ${f(s.false_accept_rate)} |`,
    `| unnecessary-escalation rate | ${f(s.unnecessary_escalation_rate)} |`,
    ...r.step_auroc.map((a) => `| evaluator AUROC, step ${a.step} (${short(a.model)}) | ${f(a.auroc)} (n=${a.n}) |`),
    ...(r.two_model
      ? [
          `| APGR | ${f(r.two_model.apgr)} |`,
          `| CPT(50%) | ${f(r.two_model.cpt50)} |`,
          `| CPT(80%) | ${f(r.two_model.cpt80)} |`,
          `| CPT(95%) | ${f(r.two_model.cpt95)} |`,
        ]
      : []),
    `| AIQ (threshold sweep) | ${f(r.aiq, 4)} |`,
    ...(r.cost_at_95 !== null
      ? [`| cost at 95% of the best model's quality | ${usd(r.cost_at_95.cost)} (${f(r.cost_at_95.saving, 2)}× cheaper) |`]
      : [`| cost at 95% of the best model's quality | not reached |`]),
  ];
  return lines.join('\n') + '\n';
}
