/**
 * Health of deployments, shared by every request a router worker runs: a circuit breaker per
 * deployment (closed → open after consecutive failures → one probe after a pause → closed again
 * on success, open for another pause on failure) and a running latency estimate per model. A
 * probe is a single attempt (the workflow gives it no retry ladder), so probing is cheap and the
 * pause can be short: a deployment that recovered gets traffic again within about one pause. In memory per router worker process:
 * each router instance learns on its own, so nothing depends on processes sharing a host.
 */
import type { DeploymentRef, RouteDecision } from '../common/types.js';
import { countsAgainstDeployment } from '../common/errors.js';
import { PoolBacklog } from './backlog.js';

interface Circuit {
  consecutiveFailures: number;
  openedAt: number | null;
  /** Until when a probe handed out is awaited before another request may probe. */
  probeUntil: number | null;
}

export interface BreakerOptions {
  failureThreshold: number;
  openMs: number;
  now?: () => number;
}

export type CircuitState = 'closed' | 'open' | 'half-open';

export class DeploymentHealth {
  private readonly circuits = new Map<string, Circuit>();
  private readonly latencies = new Map<string, number[]>();
  private readonly now: () => number;
  /** Recent waits for a worker slot, per pool (activities/backlog.ts). */
  readonly backlog: PoolBacklog;

  constructor(private readonly options: BreakerOptions) {
    this.now = options.now ?? Date.now;
    this.backlog = new PoolBacklog(this.now);
  }

  private circuit(id: string): Circuit {
    let c = this.circuits.get(id);
    if (!c) {
      c = { consecutiveFailures: 0, openedAt: null, probeUntil: null };
      this.circuits.set(id, c);
    }
    return c;
  }

  state(id: string): CircuitState {
    const c = this.circuits.get(id);
    if (!c || c.openedAt === null) return 'closed';
    return this.now() - c.openedAt >= this.options.openMs ? 'half-open' : 'open';
  }

  /**
   * Deployments to try, in configured order, without open circuits, and which of them are probes.
   * A half-open deployment is offered to one request at a time as a probe. The probe is a lease,
   * not a lock: a request may be offered it and never call it (an earlier deployment answered, the
   * step was skipped, the worker died), so after one more pause another request may probe.
   */
  order(deployments: DeploymentRef[]): { deployments: DeploymentRef[]; probes: string[]; backlogMs: Record<string, number> } {
    const probes: string[] = [];
    const now = this.now();
    const usable = deployments.filter((d) => {
      const state = this.state(d.id);
      if (state === 'closed') return true;
      if (state === 'open') return false;
      const c = this.circuit(d.id);
      if (c.probeUntil !== null && now < c.probeUntil) return false;
      c.probeUntil = now + this.options.openMs;
      probes.push(d.id);
      return true;
    });
    const backlogMs = this.backlog.snapshot(new Set(usable.map((d) => d.pool)));
    return {
      deployments: fasterFirst(
        usable,
        (id) => this.p50(id),
        (pool) => backlogMs[pool] ?? 0,
      ),
      probes,
      backlogMs,
    };
  }

  record(id: string, ok: boolean, errorType?: string): void {
    const c = this.circuit(id);
    c.probeUntil = null;
    if (ok) {
      c.consecutiveFailures = 0;
      c.openedAt = null;
      return;
    }
    if (!countsAgainstDeployment(errorType)) return;
    c.consecutiveFailures++;
    if (c.openedAt !== null || c.consecutiveFailures >= this.options.failureThreshold) c.openedAt = this.now();
  }

  /** One answer's latency, per model and per deployment (`key`: a model name or a deployment id). */
  recordLatency(keys: string[], ms: number): void {
    for (const key of keys) {
      let window = this.latencies.get(key);
      if (!window) this.latencies.set(key, (window = []));
      window.push(ms);
      if (window.length > 64) window.shift();
    }
  }

  /** Median of the last answers' latencies of a model or a deployment, once there are enough to trust. */
  p50(key: string): number | null {
    const window = this.latencies.get(key);
    if (!window || window.length < 5) return null;
    const sorted = [...window].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  }

  snapshot(): Record<string, { state: CircuitState; consecutive_failures: number }> {
    return Object.fromEntries(
      [...this.circuits.keys()].map((id) => [id, { state: this.state(id), consecutive_failures: this.circuit(id).consecutiveFailures }]),
    );
  }
}

/** A deployment counts as faster only when its measured median beats the other's by this factor… */
export const FASTER_BY = 1.5;
/** …and by this much: a few milliseconds are noise, not a reason to leave the configured order. */
export const FASTER_BY_MS = 100;

/**
 * Latency-aware order: among equivalent deployments (primaries among primaries, fallbacks among
 * fallbacks), one expected to answer FASTER_BY times and FASTER_BY_MS sooner moves ahead; within
 * that margin the configured order stands. Expected time is the measured median latency plus the
 * pool's current backlog (`backlogMs`: how long its calls wait for a worker slot); when either
 * median is not measured yet, the backlogs alone decide (the latencies count as equal). Pure.
 */
export function fasterFirst(deployments: DeploymentRef[], p50: (id: string) => number | null, backlogMs: (pool: string) => number = () => 0): DeploymentRef[] {
  const out = [...deployments];
  // Insertion sort: stable, and the lists are a handful of deployments long.
  for (let i = 1; i < out.length; i++) {
    for (let j = i; j > 0; j--) {
      const [before, after] = [out[j - 1]!, out[j]!];
      const a = p50(before.id);
      const b = p50(after.id);
      const measured = a !== null && b !== null;
      const ta = (measured ? a : 0) + backlogMs(before.pool);
      const tb = (measured ? b : 0) + backlogMs(after.pool);
      if (before.fallback !== after.fallback || tb * FASTER_BY > ta || ta - tb < FASTER_BY_MS) break;
      out[j - 1] = after;
      out[j] = before;
    }
  }
  return out;
}

/**
 * Where a model's call goes now: healthy deployments (faster first among equivalents), probes of
 * half-open circuits, and the model's measured P50. The `route` local activity, and the API
 * process with an embedded router before it starts a workflow (CascadeInput.firstRoute).
 */
export function routeFor(health: DeploymentHealth, model: string, deployments: DeploymentRef[]): RouteDecision {
  return { ...health.order(deployments), measuredP50Ms: health.p50(model) };
}
