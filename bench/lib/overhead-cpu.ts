/**
 * CPU time each process of the stack spends per request (Linux /proc, user + system), so the
 * profile can say which process a request's time is spent in, not only where it waits.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/**
 * CPU milliseconds the process and its descendants have used so far, or NaN when it is gone (or
 * not on Linux). Descendants count because some servers work in child processes (PostgreSQL's
 * backends, a multi-worker LiteLLM proxy): living children are read directly, exited ones are in
 * the parent's cutime/cstime once reaped.
 */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
    return (ticks * 1000) / TICKS_PER_SECOND + children(pid).reduce((sum, child) => sum + (cpuMs(child) || 0), 0);
  } catch {
    return NaN;
  }
}

function children(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
  } catch {
    return [];
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
