/**
 * Per-key budgets and rate limits, as pure state transitions: what a request reserves before its
 * cascade starts, whether the key can take it (budget per UTC day and month, requests and tokens
 * per minute), and what settling its real cost does. No Temporal, no I/O: the key's entity
 * workflow (key-budget.ts) holds the state and applies these one message at a time, which is what
 * makes reserve-then-spend atomic across API processes; unit-tested directly.
 */
import type { CascadeInput } from '../common/types.js';
import type { KeyBudgetLimits, KeyRefusal, ReserveRequest, ReserveRefusal } from '../common/budget-messages.js';
import { ErrorType } from '../common/errors.js';
import { costUsd, estimatePromptTokens, roundUsd, stepFeasibility } from './policy.js';
import { extraCallsOf, extraSamplesOf, judgeModelOf } from './evidence.js';

/** A granted reservation, held until the cascade settles it (or it expires). */
export interface Reservation {
  usd: number;
  tokens: number;
  /** The epoch second its request was counted in (rate window). */
  second: number;
  reservedAt: number;
  expiresAt: number;
}

export interface KeyBudgetState {
  keyId: string;
  limits: KeyBudgetLimits;
  /** Spend settled in the current UTC day (`2026-12-02`) and month (`2026-12`). */
  day: string;
  dayUsd: number;
  month: string;
  monthUsd: number;
  reservations: Record<string, Reservation>;
  /** Rate window: [epoch second, requests, tokens] for the last 60 s. */
  window: [number, number, number][];
  /** Reservation ids settled recently (id → when), so a retried request does not reserve twice. */
  settled: Record<string, number>;
}

const WINDOW_S = 60;
/** Settled ids are remembered this long (an Idempotency-Key retry within it reserves nothing). */
const SETTLED_KEEP_MS = 15 * 60_000;
const SETTLED_MAX = 5000;

export function initialState(keyId: string, limits: KeyBudgetLimits, now: number): KeyBudgetState {
  const { day, month } = periodsOf(now);
  return { keyId, limits, day, dayUsd: 0, month, monthUsd: 0, reservations: {}, window: [], settled: {} };
}

/** When the next UTC day or month begins (epoch ms): when a spent budget of that period is whole again. */
export function nextPeriodStart(period: 'day' | 'month', now: number): number {
  const d = new Date(now);
  return period === 'day' ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

export function periodsOf(now: number): { day: string; month: string } {
  const iso = new Date(now).toISOString();
  return { day: iso.slice(0, 10), month: iso.slice(0, 7) };
}

/**
 * The most a request can cost: every step of its ladder answered, with every extra call its
 * evaluators make (self-consistency samples, a judge), each answer `max_tokens` long — or, when
 * the request sets no max_tokens, the model's `expected_output_tokens` (a documented estimate: a
 * longer answer is settled at its real cost). Never above the request's own cost cap, which the
 * cascade does not plan past.
 */
export function worstCaseCostUsd(input: Pick<CascadeInput, 'params' | 'policy' | 'models' | 'maxCostUsd'>): number {
  const { params, policy, models } = input;
  const prompt = estimatePromptTokens(params);
  let total = 0;
  policy.steps.forEach((step, i) => {
    const model = models[step.model];
    if (!model) return;
    const out = params.max_tokens ?? model.expectedOutputTokens;
    const evaluated = i < policy.steps.length - 1 || policy.evaluate_last_step;
    total += costUsd(model, prompt, out) * (1 + (evaluated ? extraSamplesOf(step.evaluator) : 0));
    const judge = evaluated ? judgeModelOf(step.evaluator) : null;
    const judgeModel = judge ? models[judge] : undefined;
    if (judgeModel) total += costUsd(judgeModel, prompt + out, judgeModel.expectedOutputTokens);
  });
  return roundUsd(Math.min(total, input.maxCostUsd ?? policy.max_cost_usd));
}

const REFUSAL_TYPES = { context_length: ErrorType.ContextLengthExceeded, budget: ErrorType.BudgetExceeded, deadline: ErrorType.DeadlineExceeded };

/**
 * A request the cascade would refuse before any model call, decided from the request alone: a
 * prompt too long for every step's context window, or a cost cap no step fits. The API refuses it
 * without starting a workflow (nothing to show as failed in the Temporal UI); the error is the
 * one the cascade would end with (the last step's reason). The deadline is left to the cascade,
 * which knows the models' measured latency.
 */
export function refusalBeforeStart(input: Pick<CascadeInput, 'params' | 'policy' | 'models' | 'maxCostUsd'>): { type: string; message: string } | null {
  const { params, policy } = input;
  let last: { type: string; message: string } | null = null;
  for (const [i, step] of policy.steps.entries()) {
    const model = input.models[step.model];
    if (!model) return null;
    const evaluated = i < policy.steps.length - 1 || policy.evaluate_last_step;
    const f = stepFeasibility({
      model,
      promptTokens: estimatePromptTokens(params),
      maxTokens: params.max_tokens,
      remainingMs: Number.POSITIVE_INFINITY,
      measuredP50Ms: null,
      spentUsd: 0,
      maxCostUsd: input.maxCostUsd ?? policy.max_cost_usd,
      extraCalls: evaluated ? extraCallsOf(step.evaluator) : 0,
    });
    if (f.ok) return null;
    last = { type: REFUSAL_TYPES[f.reason], message: f.detail };
  }
  return last;
}

/** Tokens a request is counted for in the per-minute window when it is admitted (settle corrects it). */
export function estimatedTokens(input: Pick<CascadeInput, 'params' | 'policy' | 'models'>): number {
  const first = input.models[input.policy.steps[0]!.model];
  return estimatePromptTokens(input.params) + (input.params.max_tokens ?? first?.expectedOutputTokens ?? 0);
}

/** Starts a new UTC day or month, and forgets what left the rate window or the settled memory. */
export function roll(s: KeyBudgetState, now: number): void {
  const { day, month } = periodsOf(now);
  if (day !== s.day) [s.day, s.dayUsd] = [day, 0];
  if (month !== s.month) [s.month, s.monthUsd] = [month, 0];
  const second = Math.floor(now / 1000);
  s.window = s.window.filter(([t]) => t > second - WINDOW_S);
  const ids = Object.entries(s.settled).filter(([, at]) => at > now - SETTLED_KEEP_MS);
  s.settled = Object.fromEntries(ids.slice(-SETTLED_MAX));
}

export const reservedUsd = (s: KeyBudgetState): number => roundUsd(Object.values(s.reservations).reduce((a, r) => a + r.usd, 0));

/** Whether the key can take the request now; null when it can. Reads the state only. */
export function refusal(s: KeyBudgetState, req: ReserveRequest, now: number): ReserveRefusal | null {
  if (s.reservations[req.id] || s.settled[req.id] !== undefined) return null; // the same request again: already paid for
  const { limits } = req;
  const reserved = reservedUsd(s);
  const { day, month } = periodsOf(now); // the validator reads a state that may not be rolled yet
  for (const [period, limit, spent] of [
    ['day', limits.dayUsd, s.day === day ? s.dayUsd : 0],
    ['month', limits.monthUsd, s.month === month ? s.monthUsd : 0],
  ] as const) {
    if (limit === undefined || spent + reserved + req.usd <= limit + 1e-12) continue;
    return {
      code: 'budget_exceeded',
      message:
        `This key's ${period === 'day' ? 'daily' : 'monthly'} budget of $${limit} is used up: $${roundUsd(spent)} spent, ` +
        `$${reserved} reserved by requests in flight, and this request may cost up to $${req.usd}.`,
      period,
      // The reservations of requests in flight are what stands in the way: they settle within seconds.
      heldByInFlight: spent + req.usd <= limit + 1e-12,
      resetsAtMs: nextPeriodStart(period, now),
    };
  }
  const second = Math.floor(now / 1000);
  const live = s.window.filter(([t]) => t > second - WINDOW_S).sort((a, b) => a[0] - b[0]);
  const rpm = limits.requestsPerMinute;
  if (rpm !== undefined) {
    const wait = waitUntilFits(live, 1, 1, rpm, second);
    if (wait !== null)
      return { code: 'rate_limit_exceeded', kind: 'requests', message: `Rate limit of ${rpm} requests per minute reached for this key.`, retryAfterS: wait };
  }
  const tpm = limits.tokensPerMinute;
  if (tpm !== undefined) {
    const wait = waitUntilFits(live, 2, req.tokens, tpm, second);
    if (wait !== null)
      return {
        code: 'rate_limit_exceeded',
        kind: 'tokens',
        message: `Rate limit of ${tpm} tokens per minute reached for this key (this request counts ~${req.tokens}).`,
        retryAfterS: wait,
      };
  }
  return null;
}

/** Seconds until `need` more fits under `limit` in the window (column 1 requests, 2 tokens); null when it fits now. */
function waitUntilFits(live: [number, number, number][], column: 1 | 2, need: number, limit: number, second: number): number | null {
  let used = live.reduce((a, b) => a + b[column], 0);
  if (used + need <= limit) return null;
  if (need > limit) return WINDOW_S; // never fits in one minute: the caller learns so from the message
  for (const bucket of live) {
    used -= bucket[column];
    if (used + need <= limit) return Math.max(1, bucket[0] + WINDOW_S - second);
  }
  return WINDOW_S;
}

/** Records a granted reservation (call after `refusal` returned null). Idempotent per request id. */
export function reserve(s: KeyBudgetState, req: ReserveRequest, now: number): void {
  s.limits = req.limits;
  if (s.reservations[req.id] || s.settled[req.id] !== undefined) return;
  const second = Math.floor(now / 1000);
  const bucket = s.window.find(([t]) => t === second);
  if (bucket) [bucket[1], bucket[2]] = [bucket[1] + 1, bucket[2] + req.tokens];
  else s.window.push([second, 1, req.tokens]);
  s.reservations[req.id] = { usd: req.usd, tokens: req.tokens, second, reservedAt: now, expiresAt: now + req.ttlMs };
}

/**
 * The request's real cost (from its cascade's trace) replaces its reservation; its real tokens
 * replace the estimate in the rate window. A settle for an unknown request still counts its cost
 * (money was spent); one for a request settled already counts nothing.
 */
export function settle(s: KeyBudgetState, id: string, usd: number, tokens: number | null, now: number): void {
  if (s.settled[id] !== undefined) return;
  const r = s.reservations[id];
  delete s.reservations[id];
  s.settled[id] = now;
  s.dayUsd = roundUsd(s.dayUsd + usd);
  s.monthUsd = roundUsd(s.monthUsd + usd);
  const bucket = r && tokens !== null ? s.window.find(([t]) => t === r.second) : undefined;
  if (bucket && r) bucket[2] = Math.max(0, bucket[2] + tokens! - r.tokens);
}

/** Reservations whose cascade never settled them in time (checked against Temporal by the workflow). */
export function expired(s: KeyBudgetState, now: number): [string, Reservation][] {
  return Object.entries(s.reservations).filter(([, r]) => r.expiresAt <= now);
}

/** When the workflow must next look at its reservations (null: none held). */
export function nextExpiry(s: KeyBudgetState): number | null {
  const times = Object.values(s.reservations).map((r) => r.expiresAt);
  return times.length ? Math.min(...times) : null;
}

/** A refused chunk asks again this much later when only other requests' reservations stand in the way. */
export const IN_FLIGHT_RETRY_MS = 5000;

/** What a document job does with a chunk its key refused. */
export type ChunkWait =
  /** Wait for one of the job's own running chunks to end (they settle below what they reserved), then ask again. */
  | { kind: 'own-chunk' }
  /** Ask again after this long (a rate limit's Retry-After, or other requests' reservations). */
  | { kind: 'sleep'; ms: number }
  /** Pause the job; with `resumeAtMs`, it resumes by itself then (the budget's next day or month). */
  | { kind: 'pause'; reason: string; resumeAtMs?: number };

/** The decision for a refused chunk, given how many of the job's chunks are running. Pure. */
export function chunkWait(refused: KeyRefusal, runningChunks: number): ChunkWait {
  if (refused.code === 'rate_limit_exceeded') return { kind: 'sleep', ms: refused.retryAfterS * 1000 };
  const reason = `${refused.code}: ${refused.message}`;
  if (refused.code === 'key_revoked') return { kind: 'pause', reason };
  if (runningChunks > 0) return { kind: 'own-chunk' };
  if (refused.heldByInFlight) return { kind: 'sleep', ms: IN_FLIGHT_RETRY_MS };
  return { kind: 'pause', reason, resumeAtMs: refused.resetsAtMs };
}
