/**
 * Pool backlog as the router sees it: how long recent model calls waited before a worker slot
 * took them (schedule-to-start on the pool's task queue, or the wait for a pool slot with local
 * dispatch), reported with each call's outcome. A pool whose calls wait is busy now, whatever its
 * hardware's speed: equivalent deployments on other pools go first (fasterFirst in breaker.ts) and
 * a step's deadline check counts the wait (stepFeasibility in workflows/policy.ts). In memory per
 * router worker, like the breakers.
 */

/** Only waits this recent count: a backlog drains, and a pool nobody sends calls to reports none. */
export const BACKLOG_WINDOW_MS = 10_000;
/**
 * A median wait below this is dispatch latency (a loaded Temporal server takes tens of ms to hand
 * a task to a worker), not a queue: it counts as no backlog, so pools are not reordered on noise.
 */
export const BACKLOGGED_MS = 250;
const MAX_SAMPLES = 64;

export class PoolBacklog {
  private readonly samples = new Map<string, { at: number; ms: number }[]>();

  constructor(private readonly now: () => number = Date.now) {}

  record(pool: string, waitedMs: number): void {
    let window = this.samples.get(pool);
    if (!window) this.samples.set(pool, (window = []));
    window.push({ at: this.now(), ms: Math.max(0, waitedMs) });
    if (window.length > MAX_SAMPLES) window.shift();
  }

  /** Median wait of the pool's calls in the last BACKLOG_WINDOW_MS; 0 when none were made or it is below BACKLOGGED_MS. */
  expectedMs(pool: string): number {
    const since = this.now() - BACKLOG_WINDOW_MS;
    const recent = (this.samples.get(pool) ?? []).filter((s) => s.at >= since).map((s) => s.ms);
    if (recent.length === 0) return 0;
    recent.sort((a, b) => a - b);
    const median = recent[Math.floor(recent.length / 2)]!;
    return median >= BACKLOGGED_MS ? median : 0;
  }

  /** Pools with a wait now (for the workflow's deadline check). */
  snapshot(pools: Iterable<string>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const pool of pools) {
      const ms = this.expectedMs(pool);
      if (ms > 0) out[pool] = ms;
    }
    return out;
  }
}
