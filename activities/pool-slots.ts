/**
 * A pool's concurrency when its calls run as local activities of the router worker (dispatch:
 * local): no task queue holds the backlog, so each router worker admits at most `concurrency`
 * calls per pool and makes the rest wait — up to the schedule-to-start limit, after which the call
 * fails with no_capacity and the cascade moves on, exactly as with a pool worker that is full.
 */
export class PoolSlots {
  private inUse = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {}

  /** Resolves with a release function once a slot is free; null if none freed up within `timeoutMs`. */
  acquire(timeoutMs: number, signal?: AbortSignal): Promise<(() => void) | null> {
    const release = () => {
      const next = this.waiting.shift();
      if (next) next();
      else this.inUse--;
    };
    if (this.inUse < this.size) {
      this.inUse++;
      return Promise.resolve(release);
    }
    return new Promise((resolve) => {
      const grant = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', giveUp);
        resolve(release);
      };
      const giveUp = () => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        clearTimeout(timer);
        resolve(null);
      };
      const timer = setTimeout(giveUp, timeoutMs);
      signal?.addEventListener('abort', giveUp, { once: true });
      this.waiting.push(grant);
    });
  }
}
