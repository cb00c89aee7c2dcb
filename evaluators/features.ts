/**
 * Cheap hand-made features for the answer-confidence model and the pre-router. The lists are
 * versioned: a trained model records the version it was trained with, and loading a model trained
 * on another version fails loudly instead of scoring garbage.
 */
import { checkArithmetic } from './arithmetic.js';
import { MATH_FEATURE_NAMES, mathFeatures } from './math-features.js';
import type { EvaluationInput } from './types.js';
import { countMatches, extractFinalAnswer, HEDGE_RE, isRefusal, lastUserMessage, parseJsonAnswer, promptAsksForJson } from './text.js';

export const FEATURE_VERSION = 'cheap-v4';

const log1p = Math.log1p;
const share = (text: string, re: RegExp) => (text.length ? countMatches(text, re) / text.length : 0);

export const PROMPT_FEATURE_NAMES = [
  'p_log_chars',
  'p_digit_share',
  'p_numbers',
  'p_code',
  'p_math',
  'p_json',
  'p_format',
  'p_choice',
  'p_question_marks',
  'p_lines',
  'p_open_task',
  'p_exact_task',
  'p_length_limit',
] as const;

export function promptFeatures(prompt: string): number[] {
  const numbers = countMatches(prompt, /\d+(?:\.\d+)?/g);
  return [
    log1p(prompt.length) / 10,
    share(prompt, /\d/g) * 10,
    log1p(numbers) / 3,
    /```|\bdef |\bfunction\b|\bclass \w+|[{};]\s*$|\bcode\b|\bpython\b|\bjavascript\b|\bSQL\b|\bprogram\b/im.test(prompt) ? 1 : 0,
    /\bhow (?:many|much)\b|\bcalculate\b|\bsolve\b|\bequation\b|[=+×÷^]|\bprobability\b|\bpercent|%|\$\d/i.test(prompt) ? 1 : 0,
    promptAsksForJson(prompt) ? 1 : 0,
    /\b(?:list|bullet|table|in \d+ words|no more than|exactly \d+|format|rewrite|start (?:every|each))\b/i.test(prompt) ? 1 : 0,
    /(?:^|\n)\s*[A-D][.)]\s/.test(prompt) ? 1 : 0,
    log1p(countMatches(prompt, /\?/g)) / 2,
    log1p(prompt.split('\n').length) / 3,
    OPEN_TASK_RE.test(prompt) ? 1 : 0,
    EXACT_TASK_RE.test(prompt) ? 1 : 0,
    lengthLimit(prompt) ? 1 : 0,
  ];
}

/** Open-ended tasks (many answers are fine) versus tasks with one right answer. */
const OPEN_TASK_RE =
  /\b(?:write|compose|craft|draft|imagine|pretend|role|act as|story|poem|essay|blog|email|letter|slogan|headline|describe|discuss|explain|opinion|advice|persuasive|brainstorm)\b/i;
const EXACT_TASK_RE =
  /\b(?:solve|calculate|compute|how many|how much|what is the (?:value|area|probability|sum|result)|implement|function|program|algorithm|prove|equation|integer|extract|identify|count|find the|evaluate)\b/i;

/** A requested length: "in 50 words", "within 3 sentences", "one paragraph" → {n, unit}. */
function lengthLimit(prompt: string): { n: number; unit: 'word' | 'sentence' | 'paragraph' } | null {
  const m =
    /\b(?:in|within|under|at most|no more than|less than|fewer than|exactly|using|limit(?:ed)? to)\s+(\d+|one|two|three|four|five|ten|twenty|fifty|a hundred)\s+(words?|sentences?|paragraphs?)\b/i.exec(
      prompt,
    );
  if (!m) return null;
  const words: Record<string, number> = { one: 1, two: 2, three: 3, four: 4, five: 5, ten: 10, twenty: 20, fifty: 50, 'a hundred': 100 };
  const n = /^\d+$/.test(m[1]!) ? Number(m[1]) : (words[m[1]!.toLowerCase()] ?? 0);
  const unit = m[2]!.toLowerCase().startsWith('word') ? 'word' : m[2]!.toLowerCase().startsWith('sentence') ? 'sentence' : 'paragraph';
  return n > 0 ? { n, unit } : null;
}

export const ANSWER_FEATURE_NAMES = [
  ...PROMPT_FEATURE_NAMES,
  'a_log_chars',
  'a_len_ratio',
  'a_digit_share',
  'a_lines',
  'a_code_block',
  'a_refusal',
  'a_hedges',
  'a_final_explicit',
  'a_final_numeric',
  'a_final_integer',
  'a_final_in_prompt',
  'a_arith_checked',
  'a_arith_wrong',
  'a_arith_any_wrong',
  'a_arith_final_mismatch',
  'a_json_asked',
  'a_json_valid',
  'a_truncated',
  'a_has_logprob',
  'a_logprob_mean',
  'a_repetition',
  'a_unfinished',
  'a_equals',
  'a_prompt_number_coverage',
  'a_unexplained_numbers',
  'a_steps_per_prompt_number',
  'a_final_magnitude',
  'a_final_negative',
  'a_final_markers',
  'a_final_raw_decimal',
  'a_final_raw_decorated',
  'a_log_words',
  'a_length_over_limit',
  'a_bullets',
  'a_paragraphs',
  ...MATH_FEATURE_NAMES,
] as const;

/**
 * A compact answer vector for tiny training sets (tens of prompts, e.g. MT-Bench's 29): what kind
 * of task the prompt is (open-ended versus one right answer, code, math) and how long the answer
 * is, absolutely and against the prompt. Training offers it as a candidate below SMALL_DATA_ROWS.
 */
export const COMPACT_ANSWER_FEATURES = ['p_open_task', 'p_exact_task', 'p_code', 'p_math', 'a_log_words', 'a_len_ratio'] as const;

/** Feature groups (by name prefix or list), for ablations and docs. */
export const FEATURE_GROUPS: Record<string, readonly string[]> = {
  prompt: PROMPT_FEATURE_NAMES,
  'answer length/format': [
    'a_log_chars',
    'a_len_ratio',
    'a_digit_share',
    'a_lines',
    'a_code_block',
    'a_refusal',
    'a_hedges',
    'a_json_asked',
    'a_json_valid',
    'a_truncated',
    'a_has_logprob',
    'a_logprob_mean',
    'a_repetition',
    'a_unfinished',
    'a_log_words',
    'a_length_over_limit',
    'a_bullets',
    'a_paragraphs',
  ],
  'final answer form': [
    'a_final_explicit',
    'a_final_numeric',
    'a_final_integer',
    'a_final_in_prompt',
    'a_final_magnitude',
    'a_final_negative',
    'a_final_markers',
    'a_final_raw_decimal',
    'a_final_raw_decorated',
  ],
  'arithmetic re-check (v3)': ['a_arith_checked', 'a_arith_wrong', 'a_arith_any_wrong', 'a_arith_final_mismatch', 'a_equals'],
  'number use (v3)': ['a_prompt_number_coverage', 'a_unexplained_numbers', 'a_steps_per_prompt_number'],
  'math chain (v4)': MATH_FEATURE_NAMES,
};

const numbersIn = (text: string): number[] =>
  [...text.replace(/\\([*$_])/g, '$1').matchAll(/\d[\d,]*(?:\.\d+)?/g)].map((m) => Number(m[0].replace(/,/g, ''))).filter(Number.isFinite);

export function answerFeatures(input: EvaluationInput): number[] {
  const prompt = lastUserMessage(input.messages);
  const answer = input.answer;
  const final = extractFinalAnswer(answer);
  const arith = checkArithmetic(answer);
  const jsonAsked = input.responseFormat?.type === 'json_object' || input.responseFormat?.type === 'json_schema' || promptAsksForJson(prompt);
  const lps = (input.logprobs ?? []).map((t) => t.logprob).filter(Number.isFinite);
  const lines = answer
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const promptNumbers = new Set([...prompt.matchAll(/\d[\d,]*(?:\.\d+)?/g)].map((m) => Number(m[0].replace(/,/g, ''))));
  const trimmed = answer.trim();
  return [
    ...promptFeatures(prompt),
    log1p(answer.length) / 10,
    Math.max(-3, Math.min(3, Math.log((answer.length + 1) / (prompt.length + 1)))) / 3,
    share(answer, /\d/g) * 10,
    log1p(lines.length) / 3,
    /```/.test(answer) ? 1 : 0,
    isRefusal(answer) ? 1 : 0,
    log1p(countMatches(answer, HEDGE_RE)) / 2,
    final?.explicit ? 1 : 0,
    final?.numeric != null ? 1 : 0,
    final?.numeric != null && Number.isInteger(final.numeric) ? 1 : 0,
    final?.numeric != null && promptNumbers.has(final.numeric) ? 1 : 0,
    log1p(arith.checked) / 2,
    log1p(arith.wrong),
    arith.wrong > 0 ? 1 : 0,
    arith.finalMatchesLastResult === false ? 1 : 0,
    jsonAsked ? 1 : 0,
    jsonAsked && parseJsonAnswer(answer).ok ? 1 : 0,
    input.finishReason === 'length' ? 1 : 0,
    lps.length ? 1 : 0,
    lps.length ? lps.reduce((a, b) => a + b, 0) / lps.length : 0,
    lines.length > 1 ? 1 - new Set(lines).size / lines.length : 0,
    trimmed && !/[.!?)\]}"'`*\d]$/.test(trimmed) ? 1 : 0,
    log1p(countMatches(answer, /=/g)) / 3,
    ...numberUse(prompt, answer, arith.checked),
    final?.numeric != null ? Math.log10(Math.abs(final.numeric) + 1) / 5 : 0,
    final?.numeric != null && final.numeric < 0 ? 1 : 0,
    log1p(countMatches(answer, /####|\bthe (?:final )?answer is\b|\\boxed/gi)) / 2,
    ...finalFormat(answer),
    ...lengthUse(prompt, answer),
    ...mathFeatures(prompt, answer),
  ];
}

/** Answer size against what the prompt asks for, and its structure (bullets, paragraphs). */
function lengthUse(prompt: string, answer: string): [number, number, number, number] {
  const words = countMatches(answer, /\S+/g);
  const limit = lengthLimit(prompt);
  let over = 0;
  if (limit) {
    const have =
      limit.unit === 'word'
        ? words
        : limit.unit === 'sentence'
          ? countMatches(answer, /[.!?](?:\s|$)/g)
          : answer.split(/\n\s*\n/).filter((p) => p.trim()).length;
    over = Math.max(-2, Math.min(2, Math.log((have + 1) / (limit.n + 1))));
  }
  return [
    log1p(words) / 8,
    over,
    log1p(countMatches(answer, /^\s*(?:[-*•]|\d+[.)])\s/gm)) / 3,
    log1p(answer.split(/\n\s*\n/).filter((p) => p.trim()).length) / 3,
  ];
}

/**
 * How the committed final answer is written: exact-match graders (and programs reading the answer)
 * expect a bare number after the marker; "7.00", "$1,200" or "18 eggs" are format misses.
 */
function finalFormat(answer: string): [number, number] {
  const m = [...answer.matchAll(/(?:####|\bthe (?:final )?answer is\b:?)\s*([^\n]{0,40})/gi)].pop();
  if (!m) return [0, 0];
  const raw = m[1]!.trim().replace(/[.\s]+$/, '');
  return [/\d\.\d/.test(raw) ? 1 : 0, /^-?\d+$/.test(raw) ? 0 : 1];
}

/**
 * How the answer uses the question's numbers: the share of them it mentions (a solution that
 * ignores a given quantity is usually wrong), numbers it introduces that neither the question nor
 * its own shown computations explain, and computation steps per given number.
 */
function numberUse(prompt: string, answer: string, steps: number): [number, number, number] {
  const given = new Set(numbersIn(prompt));
  if (given.size === 0) return [0, 0, 0];
  const used = numbersIn(answer);
  const usedSet = new Set(used);
  let covered = 0;
  for (const n of given) if (usedSet.has(n)) covered++;
  // Results of shown computations (the right-hand sides) explain the numbers they introduce.
  const results = new Set([...answer.matchAll(/=\s*\$?(-?\d[\d,]*(?:\.\d+)?)/g)].map((m) => Number(m[1]!.replace(/,/g, ''))));
  let unexplained = 0;
  for (const n of usedSet) if (!given.has(n) && !results.has(n) && n > 10) unexplained++;
  return [covered / given.size, Math.log1p(unexplained) / 2, Math.min(3, steps / given.size) / 3];
}
