/** The overhead benchmark's Markdown tables (bench/overhead.ts measures, this only formats). */
import type { Percentiles } from './overhead-load.js';
import type { SegmentStats } from './overhead-profile.js';

export interface PathResult extends Percentiles {
  concurrency: number;
  path: string;
  cpu_ms_per_request: Record<string, number>;
}
export type Difference = { concurrency: number; path: string } & Record<string, number>;
export interface Profile {
  concurrency: number;
  path: string;
  n: number;
  segments: SegmentStats[];
}
/** A peer gateway path against Cascade's cascade path at the same concurrency, in the same run. */
export interface PeerComparison {
  concurrency: number;
  path: string;
  peer_p50_added_ms: number;
  cascade_p50_added_ms: number;
  /** Cascade's added p50 over the peer's (×): how much more latency the durable path adds. */
  added_p50_ratio: number;
  peer_rps: number;
  cascade_rps: number;
  /** The peer's throughput over Cascade's (×). */
  rps_ratio: number;
}
export interface Machine {
  cpus: number;
  cpu_model: string;
  node: string;
  loadavg_start: number[];
  loadavg_end: number[];
}

/** Each peer path against the cascade path, both as added p50 over the direct call and as throughput. */
export function comparePeers(results: PathResult[], peerPaths: readonly string[]): PeerComparison[] {
  const find = (path: string, c: number) => results.find((r) => r.path === path && r.concurrency === c);
  return results
    .filter((r) => peerPaths.includes(r.path))
    .flatMap((peer) => {
      const base = find('baseline', peer.concurrency);
      const cascade = find('cascade', peer.concurrency);
      if (!base || !cascade) return [];
      const peerAdded = peer.p50 - base.p50;
      const cascadeAdded = cascade.p50 - base.p50;
      return [
        {
          concurrency: peer.concurrency,
          path: peer.path,
          peer_p50_added_ms: peerAdded,
          cascade_p50_added_ms: cascadeAdded,
          added_p50_ratio: cascadeAdded / peerAdded,
          peer_rps: peer.rps,
          cascade_rps: cascade.rps,
          rps_ratio: peer.rps / cascade.rps,
        },
      ];
    });
}

const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const row = (cells: string[]) => `| ${cells.join(' | ')} |`;

export function renderTables(opts: {
  results: PathResult[];
  overhead: Difference[];
  aboveFloor: Difference[];
  peers: PeerComparison[];
  profiles: Profile[];
  machine: Machine;
  thinkMs: number;
  temporal: string;
  label(path: string): string;
}): string {
  const { results, overhead, aboveFloor, peers, profiles, machine, thinkMs, label } = opts;
  const out: string[] = [
    `Durable-path overhead (${machine.cpus} × ${machine.cpu_model}, Node ${machine.node}, load average ${machine.loadavg_start[0]} → ${machine.loadavg_end[0]}; ${thinkMs > 0 ? `${thinkMs} ms pause between a caller's requests` : 'closed loop, back to back'}; Temporal: ${opts.temporal}); latency in ms`,
    '',
  ];
  out.push(row(['c', 'path', 'n', 'errors', 'p50', 'p95', 'p99', 'req/s']), row(['--:', '---', '--:', '--:', '--:', '--:', '--:', '--:']));
  for (const r of results) out.push(row([String(r.concurrency), label(r.path), String(r.n), String(r.errors), f(r.p50), f(r.p95), f(r.p99), r.rps.toFixed(0)]));
  out.push('', row(['c', 'added by', 'p50', 'p95', 'p99']), row(['--:', '---', '--:', '--:', '--:']));
  const cell = (o: Record<string, number>, q: string) => `${o[`${q}_added_ms`]! >= 0 ? '+' : ''}${f(o[`${q}_added_ms`]!)} (×${o[`${q}_ratio`]!.toFixed(1)})`;
  for (const o of overhead) out.push(row([String(o.concurrency), label(o.path), cell(o, 'p50'), cell(o, 'p95'), cell(o, 'p99')]));
  out.push('', 'Added by Cascade above Temporal alone (durable path − floor)', '');
  out.push(row(['c', 'path', 'p50', 'p95', 'p99']), row(['--:', '---', '--:', '--:', '--:']));
  for (const o of aboveFloor) out.push(row([String(o.concurrency), label(o.path), cell(o, 'p50'), cell(o, 'p95'), cell(o, 'p99')]));
  if (peers.length) {
    out.push('', 'Cascade (evaluated cascade) against the peer gateway, same run, same farm pool: p50 added over the direct call, and throughput', '');
    out.push(
      row(['c', 'peer', 'peer p50 added', 'cascade p50 added', 'cascade ÷ peer', 'peer req/s', 'cascade req/s', 'peer ÷ cascade']),
      row(['--:', '---', '--:', '--:', '--:', '--:', '--:', '--:']),
    );
    for (const p of peers)
      out.push(
        row([
          String(p.concurrency),
          label(p.path),
          f(p.peer_p50_added_ms),
          f(p.cascade_p50_added_ms),
          `×${f(p.added_p50_ratio)}`,
          p.peer_rps.toFixed(0),
          p.cascade_rps.toFixed(0),
          `×${f(p.rps_ratio)}`,
        ]),
      );
  }
  const procs = [...new Set(results.flatMap((r) => Object.keys(r.cpu_ms_per_request)))].filter((name) =>
    results.some((r) => r.cpu_ms_per_request[name]! >= 0.05),
  );
  out.push(
    '',
    'CPU time per request (ms, user + system, by process)',
    '',
    row(['c', 'path', ...procs, 'total']),
    row(['--:', '---', ...procs.map(() => '--:'), '--:']),
  );
  for (const r of results) {
    const values = procs.map((name) => r.cpu_ms_per_request[name] ?? NaN);
    out.push(row([String(r.concurrency), label(r.path), ...values.map(f), f(values.filter(Number.isFinite).reduce((a, b) => a + b, 0))]));
  }
  for (const p of profiles) {
    out.push(
      '',
      `Where the time goes: c=${p.concurrency}, ${label(p.path)} (${p.n} workflow histories)`,
      '',
      row(['segment', 'p50', 'p95', 'mean', 'what']),
      row(['---', '--:', '--:', '--:', '---']),
    );
    for (const s of p.segments) out.push(row([s.segment, f(s.p50), f(s.p95), f(s.mean), s.what]));
  }
  return `${out.join('\n')}\n`;
}
