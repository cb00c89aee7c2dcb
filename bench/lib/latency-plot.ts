/**
 * The live latency bench's plot (SVG, no dependencies): each policy at each concurrency as a point,
 * cost (share of always-strong) across, total latency p50 up with a line to its p99, labelled with
 * its quality share. Down and to the left is better.
 */
import type { PhaseSummary } from './latency-report.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

export function latencySvg(phases: PhaseSummary[], title: string): string {
  const W = 760;
  const H = 500;
  const pad = { l: 70, r: 170, t: 44, b: 56 };
  const pts = phases.filter((s) => s.cost_share_of_strong !== null && Number.isFinite(s.latency_p50_ms));
  const maxX = Math.max(1, ...pts.map((s) => s.cost_share_of_strong!)) * 1.08;
  const maxY = Math.max(1, ...pts.map((s) => s.latency_p99_ms)) * 1.05;
  const x = (v: number) => pad.l + (v / maxX) * (W - pad.l - pad.r);
  const y = (v: number) => H - pad.b - (v / maxY) * (H - pad.t - pad.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${(W - pad.r + pad.l) / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="#333"/>`,
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#333"/>`,
    `<text x="${(W - pad.r + pad.l) / 2}" y="${H - 14}" text-anchor="middle">cost per request, share of always-strong</text>`,
    `<text transform="translate(18 ${H / 2}) rotate(-90)" text-anchor="middle">total latency p50 → p99 (ms, scaled farm)</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const vx = (maxX * i) / 5;
    const vy = (maxY * i) / 5;
    out.push(`<text x="${x(vx)}" y="${H - pad.b + 16}" text-anchor="middle">${(vx * 100).toFixed(0)}%</text>`);
    out.push(`<text x="${pad.l - 6}" y="${y(vy) + 4}" text-anchor="end">${Math.round(vy)}</text>`);
    out.push(`<line x1="${pad.l}" y1="${y(vy)}" x2="${W - pad.r}" y2="${y(vy)}" stroke="#eee"/>`);
  }
  const policies = [...new Set(pts.map((s) => s.policy))];
  for (const s of pts) {
    const colour = COLOURS[policies.indexOf(s.policy) % COLOURS.length]!;
    const cx = x(s.cost_share_of_strong!);
    out.push(`<line x1="${cx}" y1="${y(s.latency_p50_ms)}" x2="${cx}" y2="${y(s.latency_p99_ms)}" stroke="${colour}" stroke-opacity="0.5" stroke-width="2"/>`);
    const fill = s.concurrency === 1 ? colour : 'white';
    out.push(`<circle cx="${cx}" cy="${y(s.latency_p50_ms)}" r="5" fill="${fill}" stroke="${colour}" stroke-width="2"/>`);
    out.push(
      `<text x="${cx + 8}" y="${y(s.latency_p50_ms) + 4}" fill="${colour}">c=${s.concurrency} q ${((s.quality_share_of_strong ?? 0) * 100).toFixed(0)}%</text>`,
    );
  }
  policies.forEach((policy, i) => {
    const ly = pad.t + 10 + i * 18;
    out.push(
      `<circle cx="${W - pad.r + 16}" cy="${ly}" r="5" fill="${COLOURS[i % COLOURS.length]}"/><text x="${W - pad.r + 26}" y="${ly + 4}">${esc(policy)}</text>`,
    );
  });
  const ly = pad.t + 10 + policies.length * 18 + 8;
  out.push(`<text x="${W - pad.r + 10}" y="${ly + 4}">filled: c=1, open: c=8</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
