/**
 * CPU time each process of the stack spends per request (Linux /proc, user + system), so the
 * profile can say which process a request's time is spent in, not only where it waits.
 */
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU milliseconds the process has used so far, or NaN when it is gone (or not on Linux). */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

export type CpuSnapshot = Map<string, number>;

export function snapshot(pids: Map<string, number>): CpuSnapshot {
  return new Map([...pids].map(([name, pid]) => [name, cpuMs(pid)]));
}

/** CPU ms per request of every process between two snapshots. */
export function perRequest(before: CpuSnapshot, after: CpuSnapshot, requests: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, end] of after) {
    const start = before.get(name);
    if (start !== undefined && Number.isFinite(start) && Number.isFinite(end)) out[name] = (end - start) / Math.max(1, requests);
  }
  return out;
}
