/**
 * Fault selection: which injected fault (if any) an attempt gets.
 * Sources, in priority order: the request's `x-farm-fault` header, runtime faults set through
 * `POST /farm/faults`, then the config's `faults`. The first rule whose scope matches and that
 * fires on this attempt wins; "once"/"first attempt" faults fire only on the first attempt per
 * (fault, model, request key), so retries see the healthy path.
 */
import type { FaultRule } from './config.js';

export const FAULT_NAMES = [
  'rate-limit-retry-after',
  'rate-limit',
  'error-once',
  'unavailable',
  'reset',
  'no-response',
  'slow-first-token',
  'stream-cut',
  'stream-stall',
  'malformed-chunk',
  'no-done',
  'context-length',
  'content-filter',
  'flap',
] as const;
export type FaultName = (typeof FAULT_NAMES)[number];

const FAULT_SET: ReadonlySet<string> = new Set(FAULT_NAMES);
const FIRST_ATTEMPT_ONLY: ReadonlySet<FaultName> = new Set(['rate-limit-retry-after', 'error-once', 'reset']);

export const FAULT_HEADER = 'x-farm-fault';
export const FAULT_DELAY_HEADER = 'x-farm-fault-delay-ms';

export class FaultHeaderError extends Error {
  override name = 'FaultHeaderError';
}

/**
 * Parses `x-farm-fault`: a comma-separated list of `<name>[;pool=<pool>][;model=<model>]`.
 * Unknown names or keys throw, so a typo in a test never passes silently as "healthy".
 */
export function parseFaultHeader(value: string): FaultRule[] {
  const rules: FaultRule[] = [];
  for (const item of value.split(',')) {
    const [rawName, ...params] = item.split(';').map((s) => s.trim());
    if (!rawName) continue;
    if (!FAULT_SET.has(rawName)) throw new FaultHeaderError(`unknown fault "${rawName}" in ${FAULT_HEADER}; known: ${FAULT_NAMES.join(', ')}`);
    const rule: FaultRule = { fault: rawName as FaultName };
    for (const param of params) {
      const eq = param.indexOf('=');
      const key = eq < 0 ? param : param.slice(0, eq).trim();
      const val = eq < 0 ? '' : param.slice(eq + 1).trim();
      if ((key !== 'pool' && key !== 'model') || !val) throw new FaultHeaderError(`bad scope "${param}" in ${FAULT_HEADER}; use pool=<pool> or model=<model>`);
      rule[key] = val;
    }
    rules.push(rule);
  }
  return rules;
}

interface TimedRule extends FaultRule {
  /** Epoch ms from which a flap rule counts its unhealthy seconds. */
  addedAt: number;
}

/** Farm-wide fault state shared by every pool: once-counters, runtime faults and the flap clock. */
export class FaultState {
  private counters = new Map<string, number>();
  private runtime: TimedRule[] = [];
  private clockStart = Date.now();

  constructor(
    private readonly configRules: readonly FaultRule[],
    private readonly flapSeconds: number,
    /** Pool and model names of the farm, so a mistyped scope is an error rather than a silently healthy run. */
    private readonly known: { pools: ReadonlySet<string>; models: ReadonlySet<string> },
  ) {}

  /** Why a rule's scope cannot match anything in this farm, or null when it can. */
  scopeProblem(rule: FaultRule): string | null {
    if (rule.pool !== undefined && !this.known.pools.has(rule.pool)) return `unknown pool "${rule.pool}" (pools: ${[...this.known.pools].join(', ')})`;
    if (rule.model !== undefined && !this.known.models.has(rule.model)) return `unknown model "${rule.model}"`;
    return null;
  }

  /** Clears once-counters and restarts the flap clock. Runtime faults stay until DELETE /farm/faults. */
  reset(): void {
    this.counters.clear();
    this.clockStart = Date.now();
  }

  addRuntime(rule: FaultRule): void {
    this.runtime.push({ ...rule, addedAt: Date.now() });
  }

  clearRuntime(): void {
    this.runtime = [];
  }

  runtimeRules(): FaultRule[] {
    return this.runtime.map(({ fault, pool, model }) => ({ fault, ...(pool ? { pool } : {}), ...(model ? { model } : {}) }));
  }

  /**
   * The fault this attempt gets, or null for the healthy path. `requestKey` is called only when a
   * first-attempt fault needs it (it may hash the prompt).
   */
  choose(pool: string, model: string, requestKey: () => string, headerRules: readonly FaultRule[]): FaultName | null {
    const now = Date.now();
    for (const rule of headerRules) if (this.fires(rule, this.clockStart, pool, model, requestKey, now)) return rule.fault;
    for (const rule of this.runtime) {
      if (this.fires(rule, Math.max(rule.addedAt, this.clockStart), pool, model, requestKey, now)) return rule.fault;
    }
    for (const rule of this.configRules) if (this.fires(rule, this.clockStart, pool, model, requestKey, now)) return rule.fault;
    return null;
  }

  private fires(rule: FaultRule, since: number, pool: string, model: string, requestKey: () => string, now: number): boolean {
    if ((rule.pool && rule.pool !== pool) || (rule.model && rule.model !== model)) return false;
    if (rule.fault === 'flap') return now - since < this.flapSeconds * 1000;
    if (!FIRST_ATTEMPT_ONLY.has(rule.fault)) return true;
    const key = `${rule.fault}\u0000${model}\u0000${requestKey()}`;
    const seen = (this.counters.get(key) ?? 0) + 1;
    this.counters.set(key, seen);
    return seen === 1;
  }
}
