/**
 * Streaming evaluation: judges an answer while it is being generated and says when it is already
 * lost, i.e. when the step's evaluator is certain (or, for the logprob rule, all but certain) to
 * reject the finished answer. The pool activity feeds it every delta and stops the cheap call the
 * moment it says so, and the cascade escalates at once instead of paying for the rest.
 *
 * Rules, each one implied by the evaluator the step already runs on the finished answer:
 * - refusal (validators): a refusal phrase complete in the opening 300 characters;
 * - JSON (validators, when the request asks for JSON): an answer that opened with raw JSON can no
 *   longer parse — a syntax error, or text after the complete value — and shows no code fence;
 * - arithmetic: a wrong computation on a finished line (the evaluator gives 0 for any);
 * - logprob: after `logprob_min_tokens`, a running geometric-mean probability `logprob_margin`
 *   below the threshold (a heuristic: the only rule that is not certain; its error rate is
 *   measured in bench:latency and docs/evaluators.md);
 * - length: more completion tokens than the step's `max_tokens` budget.
 * `min` is lost when any member is (its confidence is at most each member's). Pure; no I/O.
 */
import type { EarlyAbortOptions, EvaluatorSpec } from '../common/types.js';
import { checkArithmetic } from './arithmetic.js';
import { lastUserMessage, promptAsksForJson, REFUSAL_RE } from './text.js';

export type { EarlyAbortOptions };

export const DEFAULT_EARLY_ABORT: EarlyAbortOptions = { logprob_min_tokens: 32, logprob_margin: 0.2, max_tokens: null };

export interface PrefixContext {
  messages: { role: string; content: string }[];
  responseFormat?: { type: string } | null;
}

/** Feeds deltas in order; `push` returns the reason once the answer is lost (and keeps returning it). */
export interface PrefixJudge {
  push(delta: string, logprobs?: readonly number[]): string | null;
  readonly tokens: number;
}

type Rule = (s: PrefixState) => string | null;

interface PrefixState {
  text: string;
  tokens: number;
  logprobSum: number;
  logprobCount: number;
  /** Length of `text` up to its last newline when the line rules last ran. */
  linesChecked: number;
  openingJudged: boolean;
}

const REFUSAL_WINDOW = 300;

/** The judge for a step, or null when none of its evaluators can judge a prefix. */
export function createPrefixJudge(
  spec: EvaluatorSpec,
  threshold: number,
  ctx: PrefixContext,
  opts: EarlyAbortOptions = DEFAULT_EARLY_ABORT,
): PrefixJudge | null {
  if (threshold <= 0) return null; // every answer is accepted: nothing can be lost
  const rules = rulesFor(spec, threshold, ctx, opts);
  if (opts.max_tokens !== null) {
    const max = opts.max_tokens;
    rules.push((s) => (s.tokens > max ? `longer than the step's budget of ${max} tokens` : null));
  }
  if (rules.length === 0) return null;
  const state: PrefixState = { text: '', tokens: 0, logprobSum: 0, logprobCount: 0, linesChecked: 0, openingJudged: false };
  let lost: string | null = null;
  return {
    get tokens() {
      return state.tokens;
    },
    push(delta, logprobs) {
      if (lost) return lost;
      state.text += delta;
      state.tokens += logprobs?.length || (delta ? 1 : 0);
      for (const lp of logprobs ?? [])
        if (Number.isFinite(lp)) {
          state.logprobSum += lp;
          state.logprobCount++;
        }
      for (const rule of rules) {
        lost = rule(state);
        if (lost) break;
      }
      return lost;
    },
  };
}

function rulesFor(spec: EvaluatorSpec, threshold: number, ctx: PrefixContext, opts: EarlyAbortOptions): Rule[] {
  switch (spec.type) {
    case 'min':
      return ((spec.of as EvaluatorSpec[]) ?? []).flatMap((member) => rulesFor(member, threshold, ctx, opts));
    case 'validators': {
      const checks = (spec.checks as string[] | undefined) ?? ['json', 'refusal', 'truncation', 'empty'];
      const rules: Rule[] = [];
      if (checks.includes('refusal')) rules.push(refusalRule);
      if (checks.includes('json') && wantsJson(ctx)) rules.push(jsonRule);
      return rules;
    }
    case 'arithmetic':
      return [arithmeticRule];
    case 'logprob': {
      const floor = threshold - opts.logprob_margin;
      if (floor <= 0) return [];
      return [
        (s) => {
          if (s.logprobCount < opts.logprob_min_tokens) return null;
          const confidence = Math.exp(s.logprobSum / s.logprobCount);
          return confidence < floor ? `running logprob confidence ${confidence.toFixed(2)} < ${floor.toFixed(2)} after ${s.logprobCount} tokens` : null;
        },
      ];
    }
    default:
      return [];
  }
}

function wantsJson(ctx: PrefixContext): boolean {
  const fmt = ctx.responseFormat?.type;
  return fmt === 'json_object' || fmt === 'json_schema' || (!fmt && promptAsksForJson(lastUserMessage(ctx.messages)));
}

const refusalRule: Rule = (s) => {
  if (s.openingJudged) return null;
  // Once the opening is complete this check's answer is final: one last look, then never again.
  if (s.text.length > REFUSAL_WINDOW) s.openingJudged = true;
  const m = REFUSAL_RE.exec(s.text.slice(0, REFUSAL_WINDOW));
  // The match must be followed by another character: "I cannot help" may still become "helpful".
  return m && m.index + m[0].length < s.text.length ? 'refusal in the opening' : null;
};

const jsonRule: Rule = (s) => {
  // Only an answer that opened with raw JSON is judged: prose may still be followed by a fenced
  // block, which the evaluator accepts, and so may anything that already shows a backtick.
  const start = s.text.trimStart()[0];
  if ((start !== '{' && start !== '[') || s.text.includes('`')) return null;
  const verdict = jsonPrefixVerdict(s.text);
  return verdict === 'broken' ? 'the JSON can no longer be valid' : null;
};

const arithmeticRule: Rule = (s) => {
  const end = s.text.lastIndexOf('\n');
  if (end <= s.linesChecked) return null;
  s.linesChecked = end;
  const report = checkArithmetic(s.text.slice(0, end));
  return report.wrong > 0 ? `a wrong computation on a finished line (${report.wrong} of ${report.checked})` : null;
};

/**
 * Whether a prefix can still be completed into exactly one JSON value: 'ok' (maybe), or 'broken'
 * (a syntax error, or non-space text after the value). A small scanner, not a parser: it tracks
 * nesting, strings and what may come next, which is all a prefix check needs.
 */
export function jsonPrefixVerdict(text: string): 'ok' | 'broken' {
  const stack: ('{' | '[')[] = [];
  // What the scanner expects next: a value, a key (or '}' right after '{'), ':' , ',' or a closer, or the end.
  type Expect = 'value' | 'value-or-close' | 'key' | 'key-or-close' | 'colon' | 'comma-or-close' | 'end';
  let expect: Expect = 'value';
  let i = 0;
  const n = text.length;
  const afterValue = (): Expect => (stack.length === 0 ? 'end' : 'comma-or-close');
  while (i < n) {
    const c = text[i]!;
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') {
      i++;
      continue;
    }
    if (expect === 'end') return 'broken';
    if (c === '"') {
      if (expect !== 'value' && expect !== 'value-or-close' && expect !== 'key' && expect !== 'key-or-close') return 'broken';
      const wasKey = expect === 'key' || expect === 'key-or-close';
      let j = i + 1;
      for (; j < n; j++) {
        if (text[j] === '\\') j++;
        else if (text[j] === '"') break;
      }
      if (j >= n) return 'ok'; // the string is still open
      i = j + 1;
      if (wasKey) expect = 'colon';
      else expect = afterValue();
      continue;
    }
    if (c === '{' || c === '[') {
      if (expect !== 'value' && expect !== 'value-or-close') return 'broken';
      stack.push(c);
      expect = c === '{' ? 'key-or-close' : 'value-or-close';
      i++;
      continue;
    }
    if (c === '}' || c === ']') {
      const open = stack[stack.length - 1];
      const fits = (c === '}' && open === '{') || (c === ']' && open === '[');
      if (!fits || (expect !== 'comma-or-close' && expect !== 'value-or-close' && expect !== 'key-or-close')) return 'broken';
      stack.pop();
      i++;
      expect = afterValue();
      continue;
    }
    if (c === ':') {
      if (expect !== 'colon') return 'broken';
      expect = 'value';
      i++;
      continue;
    }
    if (c === ',') {
      if (expect !== 'comma-or-close') return 'broken';
      expect = stack[stack.length - 1] === '{' ? 'key' : 'value';
      i++;
      continue;
    }
    // A literal: number, true, false or null.
    if (expect !== 'value' && expect !== 'value-or-close') return 'broken';
    const m = /^(?:-?\d[\d.eE+-]*|-|true|false|null|t(?:r(?:u)?)?|f(?:a(?:l(?:s)?)?)?|n(?:u(?:l)?)?)/.exec(text.slice(i, i + 64));
    if (!m) return 'broken';
    i += m[0].length;
    if (i >= n) return 'ok'; // the literal may still be growing
    if (!/^(?:-?\d[\d.eE+-]*|true|false|null)$/.test(m[0])) return 'broken';
    expect = afterValue();
  }
  return 'ok';
}
