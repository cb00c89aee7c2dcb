/**
 * Simulated hardware: per (model, pool) latency and a per-pool concurrency limit with a FIFO queue.
 */
import type { LatencyConfig } from './config.js';

export interface Timing {
  /** Delay before the first token. */
  ttftMs: number;
  /** Delay between consecutive stream pieces. */
  perPieceMs: number;
}

const jittered = (ms: number, jitter: number) => (jitter > 0 ? ms * (1 + jitter * (2 * Math.random() - 1)) : ms);

/**
 * Time to first token + output tokens at tokens_per_s, with jitter. When the answer has a recorded
 * latency, its total duration is the recording × recorded_latency_scale instead.
 */
export function planTiming(lat: LatencyConfig, outputTokens: number, pieces: number, recordedLatencyMs?: number): Timing {
  const ttft = jittered(lat.ttft_ms, lat.jitter);
  let generationMs = lat.tokens_per_s > 0 ? (outputTokens / lat.tokens_per_s) * 1000 : 0;
  if (recordedLatencyMs !== undefined && lat.recorded_latency_scale > 0) {
    generationMs = Math.max(0, recordedLatencyMs * lat.recorded_latency_scale - ttft);
  }
  const generation = jittered(generationMs, lat.jitter);
  return { ttftMs: Math.max(0, ttft), perPieceMs: pieces > 1 ? Math.max(0, generation) / (pieces - 1) : 0 };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Counting semaphore: at most `limit` holders; waiters are served in arrival order. */
export class Semaphore {
  private active = 0;
  private waiters: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiters.length;
  }

  /** Resolves to a release function, or to null when `signal` aborts while still queued. */
  acquire(signal?: AbortSignal): Promise<(() => void) | null> {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => {
      const grant = () => {
        signal?.removeEventListener('abort', abandon);
        this.active++;
        resolve(this.releaser());
      };
      const abandon = () => {
        this.waiters = this.waiters.filter((w) => w !== grant);
        resolve(null);
      };
      this.waiters.push(grant);
      signal?.addEventListener('abort', abandon, { once: true });
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiters.shift()?.();
    };
  }
}
