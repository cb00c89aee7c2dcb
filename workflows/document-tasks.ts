/**
 * What each document task asks of the cascade: the prompt of one chunk (map) or of one group of
 * partial answers (reduce), and how the policy is adapted to the task. Pure module: used by the
 * document workflow and by the API when it accepts a job.
 */
import type { ChatParams, EvaluatorSpec, PolicySpec } from '../common/types.js';
import type { DocumentTask, Phase, TaskOptions } from './document-types.js';

/** Tasks whose partial answers are combined by further cascade calls (the others merge in code). */
export const REDUCED_TASKS: readonly DocumentTask[] = ['summarize', 'qa'];

/** The answer a qa chunk gives for a question its excerpt does not answer. */
export const NOT_FOUND = 'NOT FOUND';

const DEFAULT_MAX_TOKENS: Record<DocumentTask, number> = { summarize: 400, extract: 800, classify: 32, qa: 400 };

/**
 * classify asks for `{"label": <one of the labels>}` as structured output: providers that support
 * json_schema (OpenAI, vLLM, llama.cpp; the farm's local model through a grammar) can then only
 * answer a label, and the validators reject anything else.
 */
export function labelSchema(labels: readonly string[]): Record<string, unknown> {
  return { type: 'object', properties: { label: { type: 'string', enum: [...labels] } }, required: ['label'], additionalProperties: false };
}

/** Tasks whose chunks answer JSON against a schema, so the schema gates acceptance. */
const SCHEMA_TASKS: readonly DocumentTask[] = ['extract', 'classify'];

export function unitParams(task: DocumentTask, options: TaskOptions, phase: Phase, index: number, units: number, text: string): ChatParams {
  const extra = options.instructions ? `\n\nInstructions from the user: ${options.instructions}` : '';
  const max_tokens = task === 'classify' ? DEFAULT_MAX_TOKENS.classify : (options.maxOutputTokens ?? DEFAULT_MAX_TOKENS[task]);
  const ask = (system: string, user: string, more: Partial<ChatParams> = {}): ChatParams => ({
    messages: [
      { role: 'system', content: system + extra },
      { role: 'user', content: user },
    ],
    temperature: 0,
    max_tokens,
    ...more,
  });
  const part = `Part ${index + 1} of ${units}`;

  if (phase.kind === 'reduce') {
    if (task === 'qa') {
      return ask(
        'You are given partial answers to questions, each found in one chunk of a long document and marked [chunk n]. ' +
          `Write one final answer per question, numbered like the questions, citing the chunks you used as [chunk n]. If no chunk answers a question, write ${NOT_FOUND}.`,
        `Questions:\n${numbered(options.questions ?? [])}\n\nPartial answers:\n\n${text}`,
      );
    }
    return ask(
      'You are given summaries of consecutive parts of one long document. Combine them into one coherent summary, at most eight sentences, that keeps the important facts, names, numbers and decisions.',
      text,
    );
  }

  switch (task) {
    // The task is repeated after the text: small models otherwise continue or restate the text
    // instead of doing what a system message before it asked.
    case 'summarize':
      return ask(
        'You summarise one part of a longer document. Write a concise summary of this part that keeps names, numbers and decisions.',
        `${part}:\n\n${text}\n\nSummarize the part above in at most five sentences, keeping names, numbers and decisions.`,
      );
    case 'extract':
      return ask(
        `Extract the requested information from one part of a longer document. Answer with one JSON value that matches this JSON schema, and nothing else:\n${JSON.stringify(options.schema)}`,
        `${part}:\n\n${text}`,
        { response_format: { type: 'json_schema', json_schema: { name: 'extraction', schema: options.schema, strict: true } } },
      );
    case 'classify':
      return ask(
        `Classify one part of a longer document. Answer with exactly one of these labels: ${(options.labels ?? []).join(', ')}, as JSON {"label": "<label>"}.`,
        `${part}:\n\n${text}`,
        { response_format: { type: 'json_schema', json_schema: { name: 'classification', schema: labelSchema(options.labels ?? []), strict: true } } },
      );
    case 'qa':
      return ask(
        `Answer the questions using only this excerpt (chunk ${index + 1} of ${units} of a longer document). Number your answers like the questions. For a question the excerpt does not answer, write ${NOT_FOUND}.`,
        `Excerpt:\n\n${text}\n\nUsing only the excerpt above, answer these questions, numbered like them; write ${NOT_FOUND} for a question it does not answer:\n${numbered(options.questions ?? [])}`,
      );
  }
}

const numbered = (items: string[]) => items.map((q, i) => `${i + 1}. ${q}`).join('\n');

function gatesOnValidators(spec: EvaluatorSpec): boolean {
  if (spec.type === 'validators') return true;
  return spec.type === 'min' && Array.isArray(spec.of) && (spec.of as EvaluatorSpec[]).some(gatesOnValidators);
}

/**
 * The policy a task's chunks run: for `extract` and `classify` every evaluated step must reject
 * output that does not match the schema, so a step whose evaluator does not gate on validators gets
 * one in front (a schema-invalid answer then escalates like any rejected answer).
 */
export function policyForTask(task: DocumentTask, policy: PolicySpec): PolicySpec {
  if (!SCHEMA_TASKS.includes(task)) return policy;
  return {
    ...policy,
    steps: policy.steps.map((step) => {
      if (gatesOnValidators(step.evaluator)) return step;
      if (step.evaluator.type === 'none') return { ...step, evaluator: { type: 'validators' }, threshold: Math.max(step.threshold, 0.5) };
      return { ...step, evaluator: { type: 'min', of: [{ type: 'validators' }, step.evaluator] } };
    }),
  };
}
