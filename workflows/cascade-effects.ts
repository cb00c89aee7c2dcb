/**
 * What the cascade asks of the world (workflows/cascade-core.ts): the Temporal workflow implements
 * it with activities, the offline routing bench with recorded answers.
 */
import type {
  CascadeTrace,
  ChatParams,
  DeploymentRef,
  EarlyAbortOptions,
  EvaluatorSpec,
  GenerateOutput,
  ModelInfo,
  PolicyStep,
  RouteDecision,
} from '../common/types.js';
import type { StreamKind } from '../common/stream.js';
import type { LearnQuery } from './learn.js';
import type { PartialAnswer } from '../common/continuation.js';

export type { RouteDecision };

export interface GenerateCall {
  /** 1-based ladder step. */
  step: number;
  model: ModelInfo;
  deployment: DeploymentRef;
  params: ChatParams;
  /** Stable per (request, step, purpose): upstream retries of this call carry the same id. */
  requestId: string;
  remainingMs: number;
  /** This attempt's share of the model's first-token limit (see firstTokenShareMs). */
  firstTokenTimeoutMs: number;
  /** The deployment's circuit is open and this call is its probe: one attempt, no retry ladder. */
  probe: boolean;
  purpose: 'answer' | 'sample' | 'judge';
  /** Send the deltas to the client: the answer itself (`live`) or an opt-in draft. */
  stream?: StreamKind;
  /** Stop the call once the step's evaluator is sure to reject the answer (evaluators/prefix.ts). */
  earlyAbort?: { evaluator: EvaluatorSpec; threshold: number; options: EarlyAbortOptions };
  /**
   * The step will evaluate this answer with this evaluator and nothing else (no samples, no judge):
   * the effects may evaluate it as part of the call and return it as `output.evaluation`, which
   * `evaluate` then returns without another round trip.
   */
  evaluate?: { spec: EvaluatorSpec; threshold: number };
  /** Continue this answer, already streamed live (the deployment supports continuation). */
  continueFrom?: string;
}

export type GenerateOutcome =
  | { ok: true; output: GenerateOutput }
  /** partial: a live call that broke after producing text reports that text. */
  | { ok: false; error: { type: string; message: string; retries: number; latencyMs: number | null; partial?: PartialAnswer } };

export interface EvaluateCall {
  step: number;
  spec: EvaluatorSpec;
  threshold: number;
  params: ChatParams;
  answer: GenerateOutput;
  model: string;
  samples?: string[];
  judgeVerdict?: string;
}

export interface DeploymentReport {
  deploymentId: string;
  model: string;
  ok: boolean;
  errorType?: string;
  latencyMs?: number | null;
  /** The call's pool and how long it waited for a worker slot there (its backlog). */
  pool?: string;
  queuedMs?: number | null;
}

export interface CascadeEffects {
  now(): number;
  route(model: ModelInfo, learn?: LearnQuery): Promise<RouteDecision>;
  generate(call: GenerateCall): Promise<GenerateOutcome>;
  evaluate(call: EvaluateCall): Promise<{ confidence: number; reasons: string[] }>;
  /** Outcome of a call, for circuit breakers and latency estimates. */
  report(report: DeploymentReport): Promise<void>;
  /** Prompt-only prediction per ladder step of P(step's answer is good enough). Optional. */
  preroute?(policySteps: PolicyStep[], params: ChatParams): Promise<number[] | null>;
  /** Called after every recorded attempt; the workflow mirrors it into the Temporal UI. */
  onProgress?(trace: CascadeTrace, note: string): void;
  /**
   * Runs `fn` so that it can be cancelled (a hedged step that lost). Without it, hedged steps run
   * to their end and the loser is simply ignored.
   */
  cancellable?<T>(fn: () => Promise<T>): { promise: Promise<T>; cancel(): void };
  /** A durable timer (tail-latency hedges wait on it). Without it, `hedge.after_ms` is not used. */
  sleep?(ms: number): Promise<void>;
  /**
   * Called before every model call: makes the results of earlier calls durable first, where the
   * effects hold them back (local-activity dispatch records them only when the workflow task ends).
   */
  checkpoint?(): Promise<void>;
  /** A hedged step whose text the client was not shown (it might lose) won: show it, and the rest live. */
  promote?(step: number): Promise<void>;
}

/** Thrown when no answer can be returned; carries the trace for the caller. */
export class CascadeFailure extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly trace: CascadeTrace,
  ) {
    super(message);
    this.name = 'CascadeFailure';
  }
}

type CallResult =
  | { ok: true; output: GenerateOutput; deployment: DeploymentRef }
  /** refusedWindow: the largest window of a deployment that refused the prompt as too long (0: none did). */
  | { ok: false; type: string; message: string; refusedWindow: number };
export type CallModel = (
  step: number,
  model: ModelInfo,
  params: ChatParams,
  purpose: GenerateCall['purpose'],
  suffix: string,
  route?: RouteDecision,
  delivery?: Pick<GenerateCall, 'stream' | 'earlyAbort' | 'evaluate'>,
) => Promise<CallResult>;
