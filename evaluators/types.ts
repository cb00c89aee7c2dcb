/**
 * The evaluator contract shared by the cascade workflow (through the `evaluate` activity),
 * the offline routing benchmark and calibration. An evaluator turns (prompt, answer) into a
 * confidence that the answer is good enough; the policy compares it with the step's threshold.
 */
export interface TokenLogprob {
  token: string;
  logprob: number;
}

export interface EvaluationInput {
  /** The conversation as sent; the last user message is the prompt being answered. */
  messages: { role: string; content: string }[];
  answer: string;
  model: string;
  /** Index of the ladder step that produced the answer (informational; no evaluator depends on its base). */
  step: number;
  finishReason?: string | null;
  logprobs?: TokenLogprob[] | null;
  /** The request's response_format, when it asked for JSON or a JSON schema. */
  responseFormat?: { type: 'text' | 'json_object' | 'json_schema'; schema?: unknown } | null;
  /**
   * Extra answers for self-consistency (samples from the same model). May start with `answer`
   * itself (the workflow passes all k answers); the evaluator then compares the other k-1.
   */
  samples?: string[];
  /** A judge model's raw verdict text, when the step uses an LLM judge. */
  judgeVerdict?: string;
}

export interface Evaluation {
  /** Confidence in [0, 1] that the answer is acceptable. */
  confidence: number;
  /** Short, human-readable reasons (no prompt or answer text). */
  reasons: string[];
}

export interface Evaluator {
  readonly name: string;
  evaluate(input: EvaluationInput): Promise<Evaluation> | Evaluation;
}
