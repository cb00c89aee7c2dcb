/**
 * Re-checks the arithmetic an answer shows: GSM8K-style calculator annotations (`<<9*2=18>>`) and
 * inline equations or chains (`16 - 3 = 13`, `2 + 1 = 3 bolts`). A wrong step is strong evidence of
 * a wrong answer; no arithmetic at all says nothing.
 */
import type { Evaluation, EvaluationInput, Evaluator } from './types.js';
import { extractFinalAnswer } from './text.js';

export interface ArithmeticReport {
  checked: number;
  wrong: number;
  /** Whether the final answer equals the last computed value (null when either is missing). */
  finalMatchesLastResult: boolean | null;
  /** The written result of the step that comes last in the text, and the final answer, for the detail. */
  lastResult: number | null;
  final: number | null;
}

// Bounded repetition: an unbounded digit run makes the chain search quadratic on long digit strings.
const NUM = String.raw`\$?\d[\d,]{0,18}(?:\.\d{1,8})?%?`;
const OP = String.raw`(?:[-+*/×÷]|\sx\s)`;
const TERM = String.raw`\(*\s*-?${NUM}\s*\)*`;
const EXPR = String.raw`${TERM}(?:\s*${OP}\s*${TERM})*`;
const CHAIN_RE = new RegExp(String.raw`${EXPR}(?:\s*=\s*${EXPR})+`, 'g');

/**
 * `a op b = c` chains in a text, with their offsets. Only lines holding an "=" are scanned: a long
 * line of numbers without one ("-14, -13, -12, …") makes the chain pattern backtrack for
 * milliseconds and can never match.
 */
export function* chainMatches(text: string): Generator<{ text: string; index: number }> {
  let offset = 0;
  for (const line of text.split('\n')) {
    if (line.includes('=')) for (const m of line.matchAll(CHAIN_RE)) yield { text: m[0], index: offset + m.index! };
    offset += line.length + 1;
  }
}
const ANNOTATION_RE = /<<([^<>=]{1,200})=([^<>]{1,50})>>/g;
/** Worked solutions are far shorter; a huge answer is only checked in its first part. */
const MAX_CHECKED_CHARS = 20_000;

/** Evaluates + - * / with parentheses and N% (= N/100). Returns null on anything else. */
export function evalExpression(src: string): number | null {
  const text = src
    .replace(/[$,]/g, '')
    .replace(/×|\sx\s/g, '*')
    .replace(/÷/g, '/');
  let pos = 0;
  const peek = () => {
    while (text[pos] === ' ') pos++;
    return text[pos];
  };
  const number = (): number | null => {
    const m = /^\d+(?:\.\d+)?/.exec(text.slice(pos));
    if (!m) return null;
    pos += m[0].length;
    let v = Number(m[0]);
    if (peek() === '%') {
      pos++;
      v /= 100;
    }
    return v;
  };
  const factor = (): number | null => {
    const c = peek();
    if (c === '-') {
      pos++;
      const v = factor();
      return v === null ? null : -v;
    }
    if (c === '(') {
      pos++;
      const v = expr();
      if (peek() !== ')') return null;
      pos++;
      return v;
    }
    return number();
  };
  const term = (): number | null => {
    let v = factor();
    while (v !== null && (peek() === '*' || peek() === '/')) {
      const op = text[pos++];
      const r = factor();
      if (r === null) return null;
      v = op === '*' ? v * r : v / r;
    }
    return v;
  };
  const expr = (): number | null => {
    let v = term();
    while (v !== null && (peek() === '+' || peek() === '-')) {
      const op = text[pos++];
      const r = term();
      if (r === null) return null;
      v = op === '+' ? v + r : v - r;
    }
    return v;
  };
  const v = expr();
  return v !== null && peek() === undefined && Number.isFinite(v) ? v : null;
}

/** Equal up to the rounding the written result shows (e.g. 10/3 = 3.33). */
function agrees(computed: number, written: number, writtenText: string): boolean {
  const decimals = /\.(\d+)/.exec(writtenText.replace(/[$,%]/g, ''))?.[1]?.length ?? 0;
  const slack = decimals > 0 ? 0.5 * 10 ** -decimals : 0.5;
  return Math.abs(computed - written) <= Math.max(slack * (decimals > 0 ? 1 : 0.02), 1e-6 * Math.abs(written)) + 1e-9;
}

function balanced(s: string): string {
  // The chain regex may take a stray bracket from the surrounding prose; drop unmatched ones.
  let t = s.trim();
  const count = (c: string) => t.split(c).length - 1;
  while (count('(') > count(')') && t.startsWith('(')) t = t.slice(1).trim();
  while (count(')') > count('(') && t.endsWith(')')) t = t.slice(0, -1).trim();
  return t;
}

export function checkArithmetic(raw: string): ArithmeticReport {
  // Markdown escapes (`\*`, `\$`) are common in chat answers.
  const answer = raw.slice(0, MAX_CHECKED_CHARS).replace(/\\([*$_])/g, '$1');
  let checked = 0;
  let wrong = 0;
  // The last result is the one written last: annotations and chains are scanned separately.
  const last = { at: -1, value: null as number | null };
  const record = (lhs: string, rhs: string, at: number) => {
    const l = evalExpression(balanced(lhs));
    const r = evalExpression(balanced(rhs));
    if (l === null || r === null) return;
    checked++;
    if (!agrees(l, r, rhs)) wrong++;
    if (at >= last.at) Object.assign(last, { at, value: r });
  };
  for (const m of answer.matchAll(ANNOTATION_RE)) record(m[1]!, m[2]!, m.index!);
  // Blanked to the same length, so chain offsets are offsets in the answer.
  const withoutAnnotations = answer.replace(ANNOTATION_RE, (a) => ' '.repeat(a.length));
  for (const m of chainMatches(withoutAnnotations)) {
    const parts = m.text.split('=');
    let offset = m.index;
    for (let i = 0; i + 1 < parts.length; i++) {
      offset += parts[i]!.length + 1;
      // Only a side with an operator is a computation; "x = 5" restates a value.
      if (!new RegExp(OP).test(parts[i]!.replace(/^\s*-/, '')) && !new RegExp(OP).test(parts[i + 1]!.replace(/^\s*-/, ''))) continue;
      record(parts[i]!, parts[i + 1]!, offset);
    }
  }
  const lastResult = last.value;
  const final = extractFinalAnswer(answer)?.numeric ?? null;
  const finalMatchesLastResult = final !== null && lastResult !== null ? Math.abs(final - lastResult) < 1e-6 * Math.max(1, Math.abs(lastResult)) + 1e-9 : null;
  return { checked, wrong, finalMatchesLastResult, lastResult, final };
}

export function createArithmeticEvaluator(opts: { whenUnchecked: number }): Evaluator {
  return {
    name: 'arithmetic',
    evaluate(input: EvaluationInput): Evaluation {
      const r = checkArithmetic(input.answer);
      if (r.checked === 0) return { confidence: opts.whenUnchecked, reasons: ['arithmetic: nothing to check'] };
      const reasons = [`arithmetic: ${r.checked - r.wrong} of ${r.checked} shown steps recompute correctly`];
      if (r.wrong > 0) return { confidence: 0, reasons };
      if (r.finalMatchesLastResult === true) reasons.push(`arithmetic: final answer ${r.final} is the last step's result`);
      // Not an error by itself (rounding up, a unit change), hence 0.75 rather than 0.
      if (r.finalMatchesLastResult === false) reasons.push(`arithmetic: final answer ${r.final} is not the last step's result ${r.lastResult}`);
      if (r.finalMatchesLastResult === null) reasons.push('arithmetic: no final number to compare with the last step');
      return { confidence: r.finalMatchesLastResult === false ? 0.75 : 1, reasons };
    },
  };
}
