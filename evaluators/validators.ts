/**
 * Format validators: JSON / JSON-schema validity when the request asks for JSON, refusal, truncation
 * (`finish_reason: length`), empty answers. All-or-nothing (1 or 0), so they also serve as a hard
 * gate inside `min`.
 */
import AjvModule from 'ajv';
import type { ValidatorCheck } from './spec.js';
import type { Evaluation, EvaluationInput, Evaluator } from './types.js';
import { isRefusal, lastUserMessage, parseJsonAnswer, promptAsksForJson } from './text.js';

type AjvInstance = import('ajv').default;
type ValidateFn = import('ajv').ValidateFunction;
const Ajv = (AjvModule as unknown as { default?: typeof AjvModule }).default ?? AjvModule;
const ajv: AjvInstance = new (Ajv as unknown as new (o: object) => AjvInstance)({ allErrors: false, strict: false });

/** Compiled schemas, bounded: a request's schema is usually one of a few the app sends. */
const compiled = new Map<string, ValidateFn | Error>();
function compile(schema: unknown): ValidateFn | Error {
  const key = JSON.stringify(schema);
  let fn = compiled.get(key);
  if (!fn) {
    try {
      fn = ajv.compile(schema as object);
    } catch (err) {
      fn = err as Error;
    }
    if (compiled.size >= 256) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, fn);
  }
  return fn;
}

/** Returns the reasons the answer fails; empty when it passes every selected check. */
export function validationFailures(input: EvaluationInput, checks: readonly ValidatorCheck[]): string[] {
  const failures: string[] = [];
  const has = (c: ValidatorCheck) => checks.includes(c);
  if (has('empty') && input.answer.trim() === '') failures.push('empty answer');
  if (has('truncation') && input.finishReason === 'length') failures.push('truncated (finish_reason: length)');
  if (has('refusal') && isRefusal(input.answer)) failures.push('refusal');
  if (has('json')) {
    const fmt = input.responseFormat?.type;
    const wantsJson = fmt === 'json_object' || fmt === 'json_schema' || (!fmt && promptAsksForJson(lastUserMessage(input.messages)));
    if (wantsJson) {
      const parsed = parseJsonAnswer(input.answer);
      if (!parsed.ok) failures.push('not valid JSON');
      else if (fmt === 'json_schema' && input.responseFormat?.schema !== undefined) {
        const fn = compile(input.responseFormat.schema);
        if (fn instanceof Error) failures.push('response schema does not compile');
        else if (!fn(parsed.value))
          failures.push(`JSON does not match the schema (${fn.errors?.[0]?.instancePath || '/'} ${fn.errors?.[0]?.message ?? ''})`.trim());
      }
    }
  }
  return failures;
}

export const ALL_CHECKS: readonly ValidatorCheck[] = ['empty', 'truncation', 'refusal', 'json'];

export function createValidatorsEvaluator(checks: readonly ValidatorCheck[] = ALL_CHECKS): Evaluator {
  return {
    name: 'validators',
    evaluate(input: EvaluationInput): Evaluation {
      const failures = validationFailures(input, checks);
      return failures.length
        ? { confidence: 0, reasons: failures.map((f) => `validators: ${f}`) }
        : { confidence: 1, reasons: [`validators: passed (${checks.join(', ')})`] };
    },
  };
}
