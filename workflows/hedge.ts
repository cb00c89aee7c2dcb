/**
 * Hedged escalation: a step and its successor run at once, and the first acceptable answer wins.
 * Pure control flow over the cascade's effects (timers and cancellation come from them).
 */
import type { GenerateOutput, ModelInfo } from '../common/types.js';
import type { CascadeEffects } from './cascade-core.js';

export interface Candidate {
  step: number;
  model: ModelInfo;
  output: GenerateOutput;
  confidence: number;
}

/** How one step ended. */
export type StepOutcome =
  | { kind: 'accepted'; candidate: Candidate }
  | { kind: 'rejected'; candidate: Candidate | null }
  | { kind: 'failed'; failure: { type: string; message: string }; contextWindow?: number }
  | { kind: 'skipped'; failure: { type: string; message: string } };

interface Race {
  pair: [number, number];
  /** Start the second step only after this long, if the first has not settled by then (0: at once). */
  delayMs: number;
  run: (i: number) => Promise<StepOutcome>;
  settle: (i: number, o: StepOutcome) => Candidate | null;
  fx: CascadeEffects;
  onHedge: () => void;
  onCancelled: (i: number) => void;
  /** The other step settled without an accepted answer while step `i` still runs. */
  onLastStanding?: (i: number) => Promise<void>;
}

/**
 * Two steps at once. Whichever settles first with an accepted answer wins and the other is
 * cancelled; a rejection waits for the other. With a delay, the first step runs alone until then
 * and, if it settles in time, no hedge happens at all. Outcomes are settled in the order they
 * arrive, which Temporal replays identically.
 */
export async function raceSteps(r: Race): Promise<{ winner: Candidate | null; hedged: boolean }> {
  const { fx } = r;
  const start = (i: number) => {
    const c = fx.cancellable ? fx.cancellable(() => r.run(i)) : { promise: r.run(i), cancel: () => {} };
    return { i, cancel: c.cancel, promise: c.promise.then((o) => ({ i, o })) };
  };
  const first = start(r.pair[0]);
  if (r.delayMs > 0 && fx.sleep) {
    const timer = fx.cancellable ? fx.cancellable(() => fx.sleep!(r.delayMs)) : { promise: fx.sleep(r.delayMs), cancel: () => {} };
    const early = await Promise.race([first.promise, timer.promise.then(() => null)]);
    if (early) {
      timer.cancel();
      timer.promise.catch(() => {}); // cancelling the timer is expected
      return { winner: r.settle(early.i, early.o), hedged: false };
    }
  }
  r.onHedge();
  let pending = [first, start(r.pair[1])];
  while (pending.length > 0) {
    const { i, o } = await Promise.race(pending.map((p) => p.promise));
    pending = pending.filter((p) => p.i !== i);
    const accepted = r.settle(i, o);
    if (accepted) {
      for (const p of pending) {
        p.cancel();
        p.promise.catch(() => {}); // its cancellation is expected, not an error
        r.onCancelled(p.i);
      }
      return { winner: accepted, hedged: true };
    }
    if (pending.length === 1) await r.onLastStanding?.(pending[0]!.i);
  }
  return { winner: null, hedged: true };
}
