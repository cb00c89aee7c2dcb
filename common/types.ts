/**
 * Data that crosses process boundaries: API → workflow → activities → back.
 * Pure types only (imported by workflow code). Everything here is JSON-serialisable.
 */
import type { StreamKind, StreamTarget } from './stream.js';
import type { ContinuationStyle } from './continuation.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | 'developer';
  content: string;
  name?: string;
}

export type ResponseFormat =
  { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; json_schema: { name?: string; schema?: unknown; strict?: boolean } };

/** The parts of an OpenAI chat request that are passed upstream. */
export interface ChatParams {
  messages: ChatMessage[];
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  stop?: string[];
  seed?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  response_format?: ResponseFormat;
  /** Token logprobs: asked by the caller or needed by the step's evaluator. */
  logprobs?: boolean;
  top_logprobs?: number;
}

export interface TokenLogprob {
  token: string;
  logprob: number;
  top_logprobs?: { token: string; logprob: number }[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** A deployment as the workflow sees it: no URLs or keys, only what routing needs. */
export interface DeploymentRef {
  id: string;
  pool: string;
  taskQueue: string;
  fallback: boolean;
  /** `local`: called as a local activity of the router worker instead of on the pool's task queue. */
  dispatch?: 'local';
  /** This deployment's own context window, when it differs from the model's (e.g. a server started with a shorter limit). */
  contextWindow?: number;
  /** How it continues a partial answer (common/continuation.ts); absent: it cannot. */
  continuation?: Exclude<ContinuationStyle, 'none'>;
}

/** What the workflow knows of a model (from the registry, resolved when the request is accepted). */
export interface ModelInfo {
  name: string;
  inputUsdPer1M: number;
  outputUsdPer1M: number;
  contextWindow: number;
  /** Configured latency for a typical answer, used before anything is measured. */
  p50LatencyMs: number;
  p99LatencyMs: number;
  expectedOutputTokens: number;
  /** First token must arrive within this (no-response detection). */
  firstTokenTimeoutMs: number;
  /** Silence allowed between stream chunks (stall detection). */
  streamIdleTimeoutMs: number;
  /** Upper bound of one attempt. */
  attemptTimeoutMs: number;
  deployments: DeploymentRef[];
}

export interface RetrySettings {
  initialIntervalMs: number;
  backoffCoefficient: number;
  maximumIntervalMs: number;
  /** Attempts on one deployment before failing over. */
  maximumAttempts: number;
  /** How long an attempt may wait for a free worker of the pool before failing over. */
  scheduleToStartTimeoutMs: number;
}

/**
 * An evaluator as named in a policy step (`type` plus its options); validated against
 * evaluators/spec.ts when config is loaded. The workflow reads only `type`, `samples` and `model`.
 */
export interface EvaluatorSpec {
  type: string;
  /** self-consistency: how many answers to compare (the first is the step's answer). */
  samples?: number;
  /** judge: the model that grades the answer. */
  model?: string;
  [option: string]: unknown;
}

export interface PolicyStep {
  model: string;
  evaluator: EvaluatorSpec;
  threshold: number;
  /** Streaming evaluation (evaluators/prefix.ts); false turns it off for the step. */
  early_abort?: EarlyAbortOptions | false;
  /** Start the next step alongside this one when it is likely to be rejected or time is short. */
  hedge?: HedgeSpec;
  /** Pools this step prefers, in order (e.g. the faster hardware); its other deployments come after. */
  pools?: string[];
}

export interface EarlyAbortOptions {
  logprob_min_tokens: number;
  logprob_margin: number;
  max_tokens: number | null;
}

export interface HedgeSpec {
  /** Hedge when the pre-router's P(this step is accepted) is below this. */
  below_p?: number;
  /** Hedge when the deadline left cannot fit this step and the next one back to back. */
  on_deadline?: boolean;
  /** Hedge when this step has not been accepted after this long (a tail-latency hedge). */
  after_ms?: number;
}

export interface PrerouterSpec {
  model_file: string;
  skip_below: number;
}

/** Learning from traffic (workflows/learn.ts): skip a step whose recent acceptance no longer pays for it. */
export interface LearnSettings {
  /** Recent outcomes kept per step (and per pre-router class). */
  window: number;
  /** Outcomes a step needs before it can be skipped. */
  min_samples: number;
  /** A skipped step still runs for one request in this many, so it can come back. */
  probe_every: number;
  /** Hysteresis: a skipped step comes back once its expected saving exceeds this share of its own cost. */
  margin: number;
  /** How often the stats are collected and router workers refresh their copy. */
  refresh_ms: number;
}

export interface PolicySpec {
  name: string;
  description?: string;
  steps: PolicyStep[];
  evaluate_last_step: boolean;
  deadline_ms: number;
  max_cost_usd: number;
  prerouter?: PrerouterSpec;
  /** Absent or false: the policy does not learn from its traffic. */
  learn?: LearnSettings | false;
}

/** Input of the cascade workflow: self-contained, so replays never depend on config files. */
export interface CascadeInput {
  requestId: string;
  /** sha256 of the request body; lets the API tell a reused Idempotency-Key with another body. */
  requestHash: string;
  params: ChatParams;
  policy: PolicySpec;
  models: Record<string, ModelInfo>;
  retry: RetrySettings;
  /** Headers forwarded to every upstream call (e.g. x-farm-fault in tests). */
  forwardHeaders?: Record<string, string>;
  /** Overrides of the policy's limits for this request. */
  deadlineMs?: number;
  maxCostUsd?: number;
  /** `stream: true` requests: where calls send their deltas (common/stream.ts). */
  stream?: StreamTarget;
  /**
   * The first step's routing decision, made by the process that started the workflow when it
   * holds routing state (an API process with an embedded router): the workflow's first model
   * call then needs no `route` local activity.
   */
  firstRoute?: { model: string; route: RouteDecision };
  /** The API key that asked (hashed id) and its tier, shown in the trace. */
  caller?: { keyId: string; tier: string };
  /** The key's budget workflow holding this request's reservation: the cascade settles it when it ends. */
  budget?: { keyWorkflowId: string };
}

/** What a policy's traffic says about one step (workflows/learn.ts). */
export interface StepDecision {
  samples: number;
  acceptance: number;
  step_cost_usd: number;
  /** Expected cost of the ladder after this step, as it runs now; null until the steps after it have run. */
  rest_cost_usd: number | null;
  skip: boolean;
  /** Requests processed when the decision last changed. */
  changed_at?: number;
}

export interface RouteDecision {
  /** Deployments to try, in order (healthy first; open circuits left out). */
  deployments: DeploymentRef[];
  /** Measured P50 latency of the model, when the router has measured it. */
  measuredP50Ms: number | null;
  /** Ids of deployments offered as the probe of their open circuit. */
  probes?: string[];
  /** The step's learned decisions, overall and per pre-router class (asked with a LearnQuery); absent: nothing learned. */
  learned?: Record<string, StepDecision> | null;
  /** Pools whose recent calls waited for a worker slot: the median wait (activities/backlog.ts). */
  backlogMs?: Record<string, number>;
}

/** Input of the `generate` activity (served on every pool's task queue). */
export interface GenerateInput {
  deploymentId: string;
  model: string;
  params: ChatParams;
  requestId: string;
  forwardHeaders?: Record<string, string>;
  firstTokenTimeoutMs: number;
  streamIdleTimeoutMs: number;
  /** Human label for logs and the UI. */
  label: string;
  /** Send this call's deltas to the API holding the client (live answer or opt-in draft). */
  stream?: { target: StreamTarget; kind: StreamKind; step: number };
  /** Stop the call as soon as the step's evaluator is sure to reject the answer. */
  earlyAbort?: { evaluator: EvaluatorSpec; threshold: number; options: EarlyAbortOptions };
  /**
   * Evaluate the answer in the same activity, before it returns (local dispatch: the router worker
   * has the evaluators): saves the step's `evaluate` local activity. Failing to evaluate never
   * fails the call; the workflow then evaluates as usual.
   */
  evaluate?: { step: number; spec: EvaluatorSpec; threshold: number };
  /**
   * The answer so far, already streamed to the client: the upstream continues it (the deployment's
   * `continuation` style) and this call's output is only the rest.
   */
  continueFrom?: string;
}

export interface GenerateOutput {
  content: string;
  finishReason: string;
  logprobs: TokenLogprob[] | null;
  usage: Usage;
  /** The model name the upstream reported. */
  upstreamModel: string;
  latencyMs: number;
  firstTokenMs: number | null;
  /** Temporal attempt number that produced the answer (1 = first try). */
  attempt: number;
  pool: string;
  /** How long the call waited for a worker slot of its pool (schedule-to-start, or the local pool-slot wait). */
  queuedMs?: number;
  /** Streaming evaluation stopped the call: why (content is only what came before). */
  stoppedFor?: string;
  /** The step's evaluation of this answer, when the call was asked to make it (GenerateInput.evaluate). */
  evaluation?: { confidence: number; reasons: string[] };
  /**
   * This answer continues text a broken call on `deployment` had streamed (`chars` long, its
   * estimated `usage` already billed with that call); `content` and `usage` include it.
   */
  continued?: { deployment: string; chars: number; usage: Usage };
}

/** One row of the trace: a model call, an evaluation, or a step that was skipped. */
export interface AttemptRecord {
  step: number;
  model: string;
  pool: string | null;
  deployment: string | null;
  latency_ms: number | null;
  confidence: number | null;
  accepted: boolean;
  error: string | null;
  /** Human-readable detail: why it was rejected, skipped or failed. */
  detail?: string;
  cost_usd: number;
  /** Temporal retries of this call on the same deployment. */
  retries?: number;
  /** Streaming evaluation stopped the call: why, tokens generated, and what that saved (estimated). */
  stopped_early?: { reason: string; tokens: number; saved_tokens_est: number; saved_ms_est: number };
  /** The model name the upstream reported for an answer (`model` is the registry name). */
  upstream_model?: string;
  /** This answer continued a stream that broke after text was sent: where it broke and how much it had. */
  continued_from?: { deployment: string; chars: number };
}

export interface CascadeTrace {
  workflow_id: string;
  policy: string;
  final_step: number | null;
  escalations: number;
  cost_usd: number;
  /** True when no step's answer was accepted and the best rejected answer is returned. */
  degraded?: boolean;
  /** Steps started alongside the one before them, and why. */
  hedges?: { step: number; reason: string }[];
  /** Registry name of the model whose answer is returned (the response's `model` is what its upstream reported). */
  registry_model?: string;
  /** The pre-router's P(accept) per step, when the policy has one. */
  prerouter?: number[];
  /** Steps the learner had marked unprofitable that ran anyway as its periodic probe. */
  probes?: number[];
  /** The API key that asked (`key_<sha256 prefix>`) and its tier (config `keys.tiers`). */
  key_id?: string;
  tier?: string;
  attempts: AttemptRecord[];
}

export interface CascadeResult {
  requestHash: string;
  content: string;
  finishReason: string;
  /** The model that actually answered, as its upstream reported it (the registry name is in `cascade.registry_model`). */
  model: string;
  usage: Usage;
  logprobs: TokenLogprob[] | null;
  cascade: CascadeTrace;
}
