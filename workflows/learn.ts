/**
 * Learning from traffic, the pure part: what one finished request says about each step of its
 * ladder (a summary the cascade workflow publishes as a search attribute when it closes), the
 * sliding window of those outcomes per step (and per pre-router class), and the decision to skip a
 * step whose recent acceptance no longer pays for its own cost. Deterministic, no I/O: the stats
 * entity workflow (learn-workflow.ts) folds summaries in, the cascade core asks the decision.
 *
 * The rule. Reaching step i, running it costs c_i and, when it is rejected (probability 1 − a_i),
 * the rest of the ladder C_{i+1}; skipping it costs C_{i+1}. The step pays only while
 * c_i + (1 − a_i)·C_{i+1} < C_{i+1}, i.e. a_i·C_{i+1} > c_i. C is computed from the last step
 * down with the decisions already taken, so every kept step lowers the expected cost below that
 * of the steps after it, and by induction below the top step alone.
 */
import type { CascadeTrace, LearnSettings, PolicySpec, PolicyStep, StepDecision } from '../common/types.js';

export type { StepDecision };

export const LEARN_DEFAULTS: LearnSettings = { window: 200, min_samples: 20, probe_every: 20, margin: 0.1, refresh_ms: 2000 };

/** How a step ended for one request: accepted, rejected (evaluated or stopped early), skipped, failed. */
export type StepVerdict = 'a' | 'r' | 's' | 'f';

export interface StepSample {
  step: number;
  /** Pre-router class (`q0`…`q3`), when the policy has a pre-router. */
  cls?: string;
  verdict: StepVerdict;
  costUsd: number;
}

export interface TraceSummary {
  ladder: string;
  costUsd: number;
  /** What the top step alone would have cost for this request's answer (null: no answer). */
  topCostUsd: number | null;
  steps: StepSample[];
}

/** FNV-1a of the ladder: a changed ladder (model, evaluator, threshold) starts its stats afresh. */
export function ladderHash(steps: PolicyStep[]): string {
  const text = JSON.stringify(steps.map((s) => [s.model, s.evaluator, s.threshold]));
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** The pre-router class of a step's predicted P(accept): four bands, so each has traffic. */
export function prerouterClass(p: number | undefined): string | undefined {
  return p === undefined ? undefined : `q${Math.min(3, Math.max(0, Math.floor(p * 4)))}`;
}

/**
 * Whether this request runs a skipped step anyway, so the step can come back: one request in
 * `every`, chosen by a hash of the workflow id (deterministic, and spread evenly over requests).
 */
export function isProbe(workflowId: string, step: number, every: number): boolean {
  if (every <= 1) return true;
  let h = 0x811c9dc5;
  const text = `${workflowId}#${step}`;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0) % every === 0;
}

/** One request's outcome per step, from its trace. */
export function summarize(trace: CascadeTrace, ladder: string, classes: (string | undefined)[], topCostUsd: number | null): TraceSummary {
  const byStep = new Map<number, StepSample>();
  for (const a of trace.attempts) {
    const s = byStep.get(a.step) ?? { step: a.step, verdict: 'f' as StepVerdict, costUsd: 0, ...(classes[a.step - 1] && { cls: classes[a.step - 1] }) };
    s.costUsd += a.cost_usd;
    const answered = a.error === null || a.stopped_early !== undefined;
    if (a.accepted) s.verdict = 'a';
    else if (answered && s.verdict !== 'a') s.verdict = 'r';
    else if (a.error?.startsWith('skipped:') && s.verdict === 'f') s.verdict = 's';
    byStep.set(a.step, s);
  }
  return { ladder, costUsd: trace.cost_usd, topCostUsd, steps: [...byStep.values()].sort((x, y) => x.step - y.step) };
}

const usd = (n: number) => Number(n.toPrecision(6)).toString();

/** `v1 <ladder> <cost> <top|-> <step>[class]:<verdict>:<cost> …` — short enough for a Keyword attribute. */
export function encodeSummary(s: TraceSummary): string {
  const steps = s.steps.map((x) => `${x.step}${x.cls ?? ''}:${x.verdict}:${usd(x.costUsd)}`);
  return ['v1', s.ladder, usd(s.costUsd), s.topCostUsd === null ? '-' : usd(s.topCostUsd), ...steps].join(' ');
}

export function decodeSummary(text: string): TraceSummary | null {
  const [version, ladder, cost, top, ...steps] = text.split(' ');
  if (version !== 'v1' || !ladder || cost === undefined || top === undefined) return null;
  const parsed: StepSample[] = [];
  for (const part of steps) {
    const m = /^(\d+)(q\d)?:([arsf]):([0-9.e+-]+)$/.exec(part);
    if (!m) return null;
    parsed.push({ step: Number(m[1]), ...(m[2] && { cls: m[2] }), verdict: m[3] as StepVerdict, costUsd: Number(m[4]) });
  }
  return { ladder, costUsd: Number(cost), topCostUsd: top === '-' ? null : Number(top), steps: parsed };
}

/** Recent outcomes of one step (or one step in one pre-router class): accepted flag and cost. */
export interface Window {
  accepted: number[];
  cost: number[];
}

export interface LearnState {
  ladder: string;
  steps: number;
  processed: number;
  windows: Record<string, Window>;
  decisions: Record<string, StepDecision>;
  /** Cost of the last `window` requests, and what the top step alone would have cost for them. */
  recent: { cost: number[]; top: number[] };
}

export function emptyLearnState(ladder: string, steps: number): LearnState {
  return { ladder, steps, processed: 0, windows: {}, decisions: {}, recent: { cost: [], top: [] } };
}

const push = (xs: number[], x: number, limit: number) => {
  xs.push(x);
  if (xs.length > limit) xs.splice(0, xs.length - limit);
};
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** Folds one request into the windows, then re-decides every step. Mutates and returns `state`. */
export function addSummary(state: LearnState, s: TraceSummary, settings: LearnSettings): LearnState {
  if (s.ladder !== state.ladder) return state;
  state.processed++;
  for (const x of s.steps) {
    if (x.verdict !== 'a' && x.verdict !== 'r') continue; // skipped or failed steps say nothing about acceptance
    for (const key of x.cls ? [`${x.step}`, `${x.step}${x.cls}`] : [`${x.step}`]) {
      const w = (state.windows[key] ??= { accepted: [], cost: [] });
      push(w.accepted, x.verdict === 'a' ? 1 : 0, settings.window);
      push(w.cost, x.costUsd, settings.window);
    }
  }
  if (s.topCostUsd !== null) {
    push(state.recent.cost, s.costUsd, settings.window);
    push(state.recent.top, s.topCostUsd, settings.window);
  }
  decide(state, settings);
  return state;
}

/**
 * Re-decides every step from the last one down: C_last is the top step's mean cost; a kept step i
 * makes C_i = c_i + (1 − a_i)·C_{i+1}, a skipped one leaves C_i = C_{i+1}. With hysteresis: a kept
 * step is skipped once a·C_rest ≤ c, a skipped one comes back only once a·C_rest > (1 + margin)·c.
 */
function decide(state: LearnState, settings: LearnSettings): void {
  const last = state.windows[`${state.steps}`];
  let rest: number | null = last && last.cost.length > 0 ? mean(last.cost) : null;
  for (let step = state.steps - 1; step >= 1; step--) {
    const keys = Object.keys(state.windows).filter((k) => k === `${step}` || new RegExp(`^${step}q\\d$`).test(k));
    for (const key of keys) state.decisions[key] = decideOne(state, key, rest, settings);
    const overall = state.decisions[`${step}`];
    if (rest !== null && overall && overall.samples > 0 && !overall.skip) rest = overall.step_cost_usd + (1 - overall.acceptance) * rest;
  }
}

function decideOne(state: LearnState, key: string, rest: number | null, settings: LearnSettings): StepDecision {
  const w = state.windows[key]!;
  const prev = state.decisions[key];
  const d: StepDecision = { samples: w.accepted.length, acceptance: mean(w.accepted), step_cost_usd: mean(w.cost), rest_cost_usd: rest, skip: false };
  if (rest !== null && d.samples >= settings.min_samples) {
    const gain = d.acceptance * rest - d.step_cost_usd;
    d.skip = prev?.skip ? gain <= settings.margin * d.step_cost_usd : gain <= 0;
  }
  const changed = (prev?.skip ?? false) !== d.skip;
  const since = changed ? state.processed : prev?.changed_at;
  return since === undefined ? d : { ...d, changed_at: since };
}

/** A step's decisions, overall (`<step>`) and per pre-router class (`<step>q<n>`). */
export function stepDecisions(decisions: Record<string, StepDecision>, step: number): Record<string, StepDecision> {
  return Object.fromEntries(Object.entries(decisions).filter(([k]) => k === `${step}` || k.startsWith(`${step}q`)));
}

/** The decision that applies to a step for a request: its pre-router class's when that has enough samples. */
export function decisionFor(decisions: Record<string, StepDecision>, step: number, cls: string | undefined, minSamples: number): StepDecision | null {
  const byClass = cls ? decisions[`${step}${cls}`] : undefined;
  if (byClass && byClass.samples >= minSamples) return byClass;
  return decisions[`${step}`] ?? null;
}

/** The trace detail of a skipped step: the numbers behind the decision. */
export function unprofitableDetail(model: string, d: StepDecision): string {
  const a = d.acceptance.toFixed(2);
  const rest = d.rest_cost_usd ?? 0;
  return `${model} accepted ${a} of the last ${d.samples} requests: $${usd(d.step_cost_usd)} + (1 − ${a}) × $${usd(rest)} ` + `≥ $${usd(rest)} without it`;
}

/** The question about a step of a policy, or undefined when the policy does not learn (or has one step). */
export function learnQueryOf(policy: PolicySpec, step: number): LearnQuery | undefined {
  if (!policy.learn || policy.steps.length < 2 || step >= policy.steps.length) return undefined;
  return { policy: policy.name, ladder: ladderHash(policy.steps), steps: policy.steps.length, step, settings: policy.learn };
}

/** What the cascade asks the router worker about a step (activities/learned.ts answers from its cached copy). */
export interface LearnQuery {
  policy: string;
  ladder: string;
  /** Steps in the ladder. */
  steps: number;
  step: number;
  settings: LearnSettings;
}
