/**
 * Features of a worked math answer against its question: which of the question's quantities the
 * answer's computations use (digits, word numbers, fractions, percentages), where each operand of
 * each shown computation comes from, whether the final answer is the result of the chain, and how
 * the answer ends. Pure functions of the prompt and the answer; no labels, no other model's answer.
 */
import { chainMatches, evalExpression } from './arithmetic.js';

const WORD_VALUES: Record<string, number[]> = {
  one: [1],
  two: [2],
  three: [3],
  four: [4],
  five: [5],
  six: [6],
  seven: [7],
  eight: [8],
  nine: [9],
  ten: [10],
  eleven: [11],
  twelve: [12],
  thirteen: [13],
  fourteen: [14],
  fifteen: [15],
  sixteen: [16],
  seventeen: [17],
  eighteen: [18],
  nineteen: [19],
  twenty: [20],
  thirty: [30],
  forty: [40],
  fifty: [50],
  sixty: [60],
  seventy: [70],
  eighty: [80],
  ninety: [90],
  hundred: [100],
  thousand: [1000],
  million: [1_000_000],
  half: [0.5, 2],
  halves: [0.5, 2],
  twice: [2],
  double: [2],
  doubles: [2],
  triple: [3],
  triples: [3],
  thrice: [3],
  quadruple: [4],
  third: [3, 1 / 3],
  thirds: [3, 1 / 3],
  quarter: [4, 0.25],
  quarters: [4, 0.25],
  fourth: [4, 0.25],
  fifth: [5, 0.2],
  sixth: [6, 1 / 6],
  tenth: [10, 0.1],
  dozen: [12],
  dozens: [12],
  pair: [2],
  pairs: [2],
  couple: [2],
};
const WORD_RE = new RegExp(String.raw`\b(${Object.keys(WORD_VALUES).join('|')})\b`, 'gi');

/** Common unit constants a correct solution may use without the question stating them. */
const CONSTANTS = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 24, 30, 31, 52, 60, 100, 365, 1000, 0.5, 0.25, 0.1, 0.01]);

/** A quantity the question states: its value(s) as an answer may write them. */
interface Quantity {
  values: number[];
  /** Stated in digits (word numbers such as "half" are often implicit in a correct answer). */
  digits: boolean;
}

const cleanNum = (s: string) => Number(s.replace(/[$,]/g, ''));

function quantitiesOf(prompt: string): Quantity[] {
  const text = prompt.replace(/\\([*$_])/g, '$1');
  const out: Quantity[] = [];
  for (const m of text.matchAll(/(\d[\d,]*(?:\.\d+)?)\s*(%|percent\b)?/g)) {
    const v = cleanNum(m[1]!);
    // The denominator of "1/4" belongs to the fraction its numerator already stands for.
    if (!Number.isFinite(v) || /\d\/$/.test(text.slice(0, m.index!))) continue;
    // "7:13", "1/4": each side is a quantity too; a percentage may be written as a factor.
    const values = m[2] ? [v, v / 100, 1 + v / 100, 1 - v / 100, 100 - v, 100 + v] : [v];
    const denominator = m[2] ? null : /^\/(\d+)/.exec(text.slice(m.index! + m[0].length));
    if (denominator) values.push(v / cleanNum(denominator[1]!), cleanNum(denominator[1]!), 1 - v / cleanNum(denominator[1]!));
    out.push({ values, digits: true });
  }
  for (const m of text.matchAll(WORD_RE)) out.push({ values: WORD_VALUES[m[1]!.toLowerCase()]!, digits: false });
  return out;
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(a), Math.abs(b)) + 0.005 * (Math.abs(b) < 1 ? 1 : 0);

interface Step {
  operands: number[];
  result: number;
  /** The left side's value (null when it does not parse). */
  computed: number | null;
}

const OP = String.raw`(?:[-+*/×÷]|\sx\s)`;
const ANNOTATION_RE = /<<([^<>=]{1,200})=([^<>]{1,50})>>/g;
const HAS_OP = new RegExp(OP);

const operandsOf = (expr: string): number[] =>
  [...expr.matchAll(/(\d[\d,]*(?:\.\d+)?)(%?)/g)].map((m) => cleanNum(m[1]!) / (m[2] ? 100 : 1)).filter(Number.isFinite);

/** The computations an answer shows, in order (annotations and inline `a op b = c` chains). */
function stepsOf(answer: string): Step[] {
  const steps: { at: number; step: Step }[] = [];
  for (const m of answer.matchAll(ANNOTATION_RE)) {
    const r = evalExpression(m[2]!.trim());
    if (r === null) continue;
    steps.push({ at: m.index!, step: { operands: operandsOf(m[1]!), result: r, computed: evalExpression(m[1]!.trim()) } });
  }
  const rest = answer.replace(ANNOTATION_RE, (s) => ' '.repeat(s.length));
  for (const m of chainMatches(rest)) {
    const parts = m.text.split('=');
    for (let i = 0; i + 1 < parts.length; i++) {
      const lhs = parts[i]!.replace(/^[\s(]*-/, '');
      if (!HAS_OP.test(lhs)) continue;
      const r = evalExpression(parts[i + 1]!.trim().replace(/^\(+|\)+$/g, '')) ?? operandsOf(parts[i + 1]!)[0] ?? null;
      if (r === null) continue;
      steps.push({
        at: m.index!,
        step: { operands: operandsOf(parts[i]!), result: r, computed: evalExpression(parts[i]!.trim().replace(/^\(+(?=[^)]*$)/, '')) },
      });
    }
  }
  return steps.sort((a, b) => a.at - b.at).map((s) => s.step);
}

export const MATH_FEATURE_NAMES = [
  'm_quantities',
  'm_digit_coverage_operands',
  'm_word_coverage',
  'm_any_coverage',
  'm_unused_digit_quantities',
  'm_steps',
  'm_foreign_operand_share',
  'm_foreign_operands',
  'm_dead_end_results',
  'm_final_is_a_result',
  'm_final_is_last_result',
  'm_final_from_nowhere',
  'm_nonint_results',
  'm_final_nonint',
  'm_wrong_share',
  'm_annotation_copy_mismatch',
  'm_no_marker',
  'm_text_after_final',
  'm_open_ended',
  'm_rounding_words',
  'm_variables',
  'm_final_units',
  'm_asked_noun_in_conclusion',
  'm_steps_minus_quantities',
] as const;

export function mathFeatures(prompt: string, rawAnswer: string): number[] {
  const answer = rawAnswer.slice(0, 20_000).replace(/\\([*$_])/g, '$1');
  const qs = quantitiesOf(prompt);
  const steps = stepsOf(answer);
  const answerNums = [...answer.replace(ANNOTATION_RE, ' ').matchAll(/\d[\d,]*(?:\.\d+)?/g)].map((m) => cleanNum(m[0])).filter(Number.isFinite);
  const answerWordVals = [...answer.matchAll(WORD_RE)].flatMap((m) => WORD_VALUES[m[1]!.toLowerCase()]!);
  const operands = steps.flatMap((s) => s.operands);
  const usedAsOperand = (q: Quantity) => q.values.some((v) => operands.some((o) => close(o, v)));
  const mentioned = (q: Quantity) => q.values.some((v) => answerNums.some((o) => close(o, v)) || answerWordVals.some((o) => close(o, v)));
  const digitQs = qs.filter((q) => q.digits);
  const wordQs = qs.filter((q) => !q.digits);
  const digitUsed = digitQs.filter((q) => usedAsOperand(q) || (steps.length === 0 && mentioned(q))).length;
  const wordUsed = wordQs.filter((q) => usedAsOperand(q) || mentioned(q)).length;

  // Provenance of each operand: the question, an earlier result, a unit constant, or nowhere.
  const promptVals = qs.flatMap((q) => q.values);
  const known: number[] = [...promptVals];
  let foreign = 0;
  let total = 0;
  const consumed = new Array<boolean>(steps.length).fill(false);
  steps.forEach((s, i) => {
    for (const o of s.operands) {
      total++;
      const j = steps.findIndex((t, k) => k < i && close(t.result, o));
      if (j >= 0) consumed[j] = true;
      if (j < 0 && !known.some((v) => close(v, o)) && !CONSTANTS.has(o)) foreign++;
    }
    known.push(s.result);
  });
  const markers = [...answer.matchAll(/####\s*([^\n]*)/g)];
  const marker = markers[markers.length - 1];
  const finalText = marker ? marker[1]!.trim() : null;
  let final: number | null = finalText ? (operandsOf(finalText)[0] ?? null) : null;
  if (final === null) {
    const m =
      [...answer.matchAll(/(?:final answer|the answer|answer)\s*(?:is|:|=)\s*\**\s*\$?(-?\d[\d,]*(?:\.\d+)?)/gi)].pop() ??
      [...answer.matchAll(/-?\d[\d,]*(?:\.\d+)?/g)].pop();
    if (m) final = cleanNum(m[1] ?? m[0]);
  }
  const last = steps[steps.length - 1];
  const isResult = final !== null && steps.some((s) => close(s.result, final));
  // Dead ends: results neither used later nor the final answer.
  const dead = steps.filter((s, i) => !consumed[i] && !(final !== null && close(s.result, final)) && i < steps.length - 1).length;
  const nonint = steps.filter((s) => !Number.isInteger(Math.round(s.result * 1e6) / 1e6)).length;
  let wrong = 0;
  let checked = 0;
  let copyMismatch = 0;
  for (const s of steps) {
    if (s.computed === null) continue;
    checked++;
    if (Math.abs(s.computed - s.result) > Math.max(0.01, 0.005 * Math.abs(s.result))) wrong++;
  }
  for (const m of answer.matchAll(/<<[^<>=]{1,200}=([^<>]{1,50})>>\s*\$?(\d[\d,]*(?:\.\d+)?)?/g)) {
    const a = evalExpression(m[1]!.trim());
    const b = m[2] ? cleanNum(m[2]) : null;
    if (a !== null && b !== null && !close(a, b) && Math.abs(a - b) > 0.01) copyMismatch++;
  }
  const afterFinal = marker ? answer.slice(marker.index! + marker[0].length).trim().length : 0;
  const tail = answer.trimEnd();
  const open = /<<[^>]*$/.test(tail) || /[=+\-*/(,]$/.test(tail) || (!marker && !/[.!?)"'*]$/.test(tail));
  return [
    Math.log1p(qs.length) / 3,
    digitQs.length ? digitUsed / digitQs.length : 1,
    wordQs.length ? wordUsed / wordQs.length : 1,
    qs.length ? (digitUsed + wordUsed) / qs.length : 1,
    Math.log1p(digitQs.length - digitUsed),
    Math.log1p(steps.length) / 3,
    total ? foreign / total : 0,
    Math.log1p(foreign),
    Math.log1p(dead),
    isResult ? 1 : 0,
    final !== null && last && close(last.result, final) ? 1 : 0,
    final !== null && !isResult && !promptVals.some((v) => close(v, final)) ? 1 : 0,
    Math.log1p(nonint),
    final !== null && !Number.isInteger(Math.round(final * 1e6) / 1e6) ? 1 : 0,
    checked ? wrong / checked : 0,
    Math.log1p(copyMismatch),
    marker ? 0 : 1,
    Math.log1p(afterFinal) / 5,
    open ? 1 : 0,
    /\b(?:round(?:ed|ing)?|approximately|about|can't have|cannot have|not possible|doesn't make sense|assum(?:e|ing))\b/i.test(answer) ? 1 : 0,
    /\b(?:let|where)\s+[a-z]\s+(?:be|=|is)\b|\b\d*[a-z]\s*=\s*\d/i.test(answer) ? 1 : 0,
    finalText !== null && /\d\s*[a-z]/i.test(finalText) ? 1 : 0,
    askedNounInConclusion(prompt, answer),
    Math.max(-3, Math.min(3, steps.length - digitQs.length)) / 3,
  ];
}

/** Does the answer's conclusion talk about what the question asks for ("how many pieces" → "pieces")? */
function askedNounInConclusion(prompt: string, answer: string): number {
  const m = [...prompt.matchAll(/\bhow (?:many|much)\s+(?:more\s+|less\s+|fewer\s+)?([a-z]+)/gi)].pop();
  if (!m) return 0.5;
  const noun = m[1]!.toLowerCase();
  if (/^(?:money|does|did|do|is|was|will|would|can|could|has|have|had)$/.test(noun)) return 0.5;
  const stem = noun.replace(/(?:es|s)$/, '');
  const lines = answer
    .replace(/####[^\n]*/g, '')
    .trim()
    .split('\n')
    .filter((l) => l.trim());
  const conclusion = lines.slice(-2).join(' ').toLowerCase();
  return conclusion.includes(stem) ? 1 : 0;
}
