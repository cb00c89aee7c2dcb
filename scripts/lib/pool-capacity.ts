/**
 * Whether a pool's workers take more calls at once than the hardware behind them serves. The
 * extra calls do not fail: they wait at the endpoint, run into the model's first-token limit and
 * fail over late (31 of 57 calls on the default `cpu` pool did, when its worker took 8 and the
 * farm's cpu pool served 2). A worker that takes no more than the endpoint serves leaves the rest
 * in Temporal's queue, where the schedule-to-start limit sends them to the next pool at once.
 */
import type { CascadeConfig } from '../../config/load.js';

export interface ServingPool {
  name: string;
  baseUrl: string;
  /** Calls the endpoint serves at once. */
  concurrency: number;
}

export interface Overcommit {
  pool: string;
  /** Calls the pool's workers take at once: concurrency × workers (× 1 router worker for `dispatch: local`). */
  takes: number;
  endpoint: string;
  serves: number;
}

const sameUrl = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

/** Every (pool, endpoint) pair where the pool's workers take more calls than the endpoint serves. */
export function overcommittedPools(config: CascadeConfig, endpoints: ServingPool[]): Overcommit[] {
  const found: Overcommit[] = [];
  for (const [pool, settings] of Object.entries(config.raw.pools)) {
    // A `dispatch: local` pool is called from the router worker (one in the embedded stack), not its own workers.
    const takes = settings.concurrency * (settings.dispatch === 'local' ? 1 : settings.workers);
    const urls = [...config.deployments.values()].filter((d) => d.ref.pool === pool).map((d) => d.baseUrl);
    for (const endpoint of endpoints)
      if (urls.some((url) => sameUrl(url, endpoint.baseUrl)) && takes > endpoint.concurrency)
        found.push({ pool, takes, endpoint: endpoint.name, serves: endpoint.concurrency });
  }
  return found;
}

export function describeOvercommit(o: Overcommit): string {
  return (
    `warning: pool ${o.pool} takes ${o.takes} calls at a time (pools.${o.pool}.concurrency × workers) but farm pool ${o.endpoint} serves ${o.serves}; ` +
    `the rest wait there and hit the first-token limit instead of failing over at once — set pools.${o.pool}.concurrency to ${o.serves} or less`
  );
}
