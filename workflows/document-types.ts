/**
 * Document jobs: the data shared by the API, the document workflow and its activities, and the
 * job's messages (progress query, pause/resume signals). Pure module: imported by workflow code.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { ModelInfo, PolicySpec, RetrySettings } from '../common/types.js';
import type { BudgetKey } from '../common/budget-messages.js';

export const DOCUMENT_TASKS = ['summarize', 'extract', 'classify', 'qa'] as const;
export type DocumentTask = (typeof DOCUMENT_TASKS)[number];

export interface TaskOptions {
  /** Extra instructions from the caller, added to every chunk's prompt. */
  instructions?: string;
  /** extract: the JSON schema every chunk's output must match. */
  schema?: Record<string, unknown>;
  /** classify: the allowed labels. */
  labels?: string[];
  /** qa: the questions. */
  questions?: string[];
  /** Upper bound of one chunk answer, in tokens. */
  maxOutputTokens?: number;
}

/** What every chunk's cascade input is built from (resolved once, when the API accepts the job). */
export interface CascadeTemplate {
  policy: PolicySpec;
  models: Record<string, ModelInfo>;
  retry: RetrySettings;
  forwardHeaders?: Record<string, string>;
}

export interface DocumentJobInput {
  jobId: string;
  /** Store key of the document text (written by the API before the job starts). */
  documentKey: string;
  task: DocumentTask;
  options: TaskOptions;
  cascade: CascadeTemplate;
  chunkTokens: number;
  overlapTokens: number;
  concurrency: number;
  historyEventsLimit: number;
  retryFailedRounds: number;
  retryFailedAfterMs: number;
  webhookUrl?: string;
  /**
   * The API key that submitted the job: its id labels every chunk (trace, ledger); while the key
   * has a budget or rate limit (as the keys file says when the chunk is due), each chunk reserves
   * its worst-case cost before its cascade starts and settles it when it ends, as a chat request
   * does. `budget`: the key's limits at submission, used only by a worker without the keys file.
   */
  key?: { keyId: string; tier: string; budget?: BudgetKey };
  /** When the API accepted the job (elapsed time spans every continued run). */
  submittedAtMs: number;
  /** State carried over by continue-as-new; absent on the first run. */
  carried?: JobState;
}

/** A phase runs units (chunks, or groups of partial answers) through the cascade. */
export type Phase = { kind: 'map' } | { kind: 'reduce'; level: number };

export const phaseKey = (p: Phase): string => (p.kind === 'map' ? 'map' : `reduce-${p.level}`);

/** Counters and cursor of a job: small, so it can be carried across continue-as-new. */
export interface JobState {
  phase: Phase;
  /** Units in the current phase. */
  units: number;
  /** Next unit of the current round to start (the first round covers 0..units-1). */
  next: number;
  /** 0 = first pass; n = the n-th rerun of failed units. */
  round: number;
  /** Units of the current round (reruns only; the first pass is 0..units-1). */
  roundUnits: number[];
  /** Units of the current phase whose cascade failed in this round (rerun in the next round). */
  failed: number[];
  /** Paused jobs start no new units (running ones finish). */
  paused: boolean;
  /** Why the job paused itself (its key's budget ran out); absent when a caller paused it. */
  pausedFor?: string;
  /** When a job paused for its key's budget resumes by itself (the next UTC day or month). */
  resumeAtMs?: number;
  chunksTotal: number;
  chunksDone: number;
  chunksFailed: number;
  reduceUnitsDone: number;
  escalations: number;
  costUsd: number;
  /** What the same calls would have cost on the policy's strongest model. */
  baselineCostUsd: number;
  mapStartedAtMs: number;
  runs: number;
}

/** One unit's outcome, as kept in the store (never in workflow state). */
export interface UnitResult {
  index: number;
  workflowId: string;
  ok: boolean;
  content: string | null;
  model: string | null;
  finalStep: number | null;
  escalations: number;
  costUsd: number;
  baselineCostUsd: number;
  degraded: boolean;
  error: string | null;
}

export type JobStatus = 'running' | 'paused' | 'finishing' | 'completed' | 'cancelled' | 'failed';

export interface JobProgress {
  status: JobStatus;
  task: DocumentTask;
  phase: string;
  chunks: { done: number; failed: number; total: number };
  reduce_steps_done: number;
  escalations: number;
  cost_usd: number;
  baseline_cost_usd: number;
  elapsed_ms: number;
  eta_ms: number | null;
  runs: number;
  /** Set while the job waits for its key's budget: resume it once there is budget again. */
  paused_reason?: string;
  /** When it resumes by itself (the next UTC day or month of the budget it ran out of). */
  resumes_at?: string;
}

export interface DocumentJobOutcome {
  jobId: string;
  status: 'completed' | 'cancelled';
  progress: JobProgress;
  /** Store key of the result document. */
  resultKey: string;
  webhook: 'none' | 'delivered' | 'failed';
}

export const progressQuery = defineQuery<JobProgress>('progress');
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');

/** Store keys of a job, in one place. */
export const storeKeys = {
  /** Named by the request's digest too: two bodies sent with one Idempotency-Key never overwrite each other. */
  document: (jobId: string, requestHash: string) => `${jobId}/document-${requestHash.slice(0, 16)}.txt`,
  unitInput: (jobId: string, phase: string, index: number) => `${jobId}/${phase}/in/${index}.txt`,
  unitResult: (jobId: string, phase: string, index: number) => `${jobId}/${phase}/out/${index}.json`,
  result: (jobId: string) => `${jobId}/result.json`,
};
