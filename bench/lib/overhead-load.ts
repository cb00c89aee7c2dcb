/**
 * Closed-loop load for the overhead benchmark: `concurrency` callers each send the next request
 * as soon as their previous one answered (or `thinkMs` after it), until `requests` were sent or
 * `maxMs` passed.
 */
import { percentile } from '../../evaluators/train/stats.js';

export interface Sample {
  /** Client-side latency: request sent → whole answer received. */
  ms: number;
  /** Wall-clock time the request was sent (Date.now()), to line it up with Temporal's event times. */
  sentAt: number;
  receivedAt: number;
  workflowId: string | null;
  error: string | null;
}

export interface CallResult {
  workflowId: string | null;
}

export interface LoadResult {
  samples: Sample[];
  wallMs: number;
}

export async function runLoad(opts: {
  concurrency: number;
  requests: number;
  maxMs: number;
  thinkMs?: number;
  call: () => Promise<CallResult>;
}): Promise<LoadResult> {
  const samples: Sample[] = [];
  const started = performance.now();
  const deadline = started + opts.maxMs;
  let issued = 0;
  const caller = async () => {
    while (issued < opts.requests && performance.now() < deadline) {
      issued++;
      const sentAt = Date.now();
      const t0 = performance.now();
      try {
        const { workflowId } = await opts.call();
        samples.push({ ms: performance.now() - t0, sentAt, receivedAt: Date.now(), workflowId, error: null });
      } catch (err) {
        samples.push({ ms: performance.now() - t0, sentAt, receivedAt: Date.now(), workflowId: null, error: (err as Error).message });
      }
      if (opts.thinkMs) await new Promise((resolve) => setTimeout(resolve, opts.thinkMs));
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, caller));
  return { samples, wallMs: performance.now() - started };
}

export interface Percentiles {
  n: number;
  errors: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  /** Answered requests per second over the phase. */
  rps: number;
}

export function summarise({ samples, wallMs }: LoadResult): Percentiles {
  const ok = samples.filter((s) => s.error === null).map((s) => s.ms);
  const sorted = ok.sort((a, b) => a - b);
  return {
    n: sorted.length,
    errors: samples.length - sorted.length,
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    mean: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
    rps: (sorted.length / wallMs) * 1000,
  };
}
