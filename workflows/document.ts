/**
 * A document job: every chunk of the document runs the cascade as a child `cascadeWorkflow`
 * (`<jobId>-chunk-<n>`, so a chunk's model calls happen once), at most `concurrency` at a time.
 * summarize and qa then combine the chunk answers level by level, also through the cascade.
 * Texts and results stay in the document store; the workflow holds only counters and a cursor,
 * continues as new before its history grows large, and reruns only the chunks that failed.
 */
import {
  CancellationScope,
  condition,
  continueAsNew,
  executeChild,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { ApplicationFailure, ChildWorkflowFailure } from '@temporalio/common';
import type { DocumentActivities } from '../activities/document.js';
import type { BudgetActivities } from '../activities/budget.js';
import type { CascadeInput, CascadeTrace, ChatParams } from '../common/types.js';
import { RESERVATION_GRACE_MS, keyBudgetWorkflowId } from '../common/budget-messages.js';
import { chunkWait, estimatedTokens, worstCaseCostUsd } from './budget.js';
import { SearchAttr } from '../common/names.js';
import { cascadeWorkflow } from './cascade.js';
import { costOfUsage, roundUsd } from './policy.js';
import { REDUCED_TASKS, unitParams } from './document-tasks.js';
import {
  pauseSignal,
  phaseKey,
  progressQuery,
  resumeSignal,
  type DocumentJobInput,
  type DocumentJobOutcome,
  type JobProgress,
  type JobState,
  type JobStatus,
  type UnitResult,
} from './document-types.js';

const docs = proxyActivities<DocumentActivities>({
  startToCloseTimeout: '2m',
  retry: { initialInterval: '500ms', maximumInterval: '10s', maximumAttempts: 20 },
});
// A chunk's reservation is retried until Temporal answers (no attempt limit): an outage of the
// key's budget workflow delays the job, it must not fail it.
const keyBudget = proxyLocalActivities<BudgetActivities>({ startToCloseTimeout: '10s', retry: { initialInterval: '1s', maximumInterval: '30s' } });
const webhook = proxyActivities<DocumentActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 },
});

/** Continue as new before the history reaches this size too (Temporal warns at 10 MB, fails at 50 MB). */
const HISTORY_BYTES_LIMIT = 4 * 1024 * 1024;
/** Results are written to the store in batches of this many (fewer activities in the history). */
const SAVE_BATCH = 32;
/** Chunk texts loaded per activity: at most ~1 MB, well under Temporal's 2 MB payload limit. */
const loadBatch = (chunkTokens: number, concurrency: number) => Math.max(1, Math.min(4 * concurrency, 64, Math.floor(1_000_000 / (chunkTokens * 4 * 1.2))));

export const initialState = (): JobState => ({
  phase: { kind: 'map' },
  units: 0,
  next: 0,
  round: 0,
  roundUnits: [],
  failed: [],
  paused: false,
  chunksTotal: 0,
  chunksDone: 0,
  chunksFailed: 0,
  reduceUnitsDone: 0,
  escalations: 0,
  costUsd: 0,
  baselineCostUsd: 0,
  mapStartedAtMs: 0,
  runs: 0,
});

export async function documentWorkflow(input: DocumentJobInput): Promise<DocumentJobOutcome> {
  const { jobId, task, options, cascade } = input;
  const s: JobState = input.carried ?? initialState();
  const reduced = REDUCED_TASKS.includes(task);
  const strongest = cascade.models[cascade.policy.steps.at(-1)!.model]!;
  const running = new Map<number, Promise<void>>();
  const texts = new Map<number, string>();
  let unsaved: UnitResult[] = [];
  let status: JobStatus = 'running';
  let waitingToRerun = false;
  let tick = 0; // bumped by every completion and signal; the scheduler waits on it

  const progress = (): JobProgress => {
    const now = Date.now();
    const perChunkMs = s.chunksDone > 0 ? (now - s.mapStartedAtMs) / s.chunksDone : null;
    const mapLeft = s.phase.kind === 'map' ? s.chunksTotal - s.chunksDone - s.failed.length : 0;
    const reduceLeft = reduced ? (s.phase.kind === 'map' ? Math.ceil(s.chunksTotal / 4) + 1 : Math.max(1, s.units - s.next + running.size)) : 0;
    const finished = status === 'completed' || status === 'cancelled';
    return {
      status: s.paused && status === 'running' ? 'paused' : status,
      task,
      phase: `${s.phase.kind === 'map' ? 'map' : `reduce level ${s.phase.level}`}${s.round > 0 ? ` (rerun ${s.round})` : ''}${waitingToRerun ? ` (waiting to rerun ${s.failed.length} failed)` : ''}`,
      chunks: { done: s.chunksDone, failed: s.phase.kind === 'map' ? s.failed.length : s.chunksFailed, total: s.chunksTotal },
      reduce_steps_done: s.reduceUnitsDone,
      escalations: s.escalations,
      cost_usd: s.costUsd,
      baseline_cost_usd: s.baselineCostUsd,
      elapsed_ms: now - input.submittedAtMs,
      // Sequential time per chunk already includes the concurrency, so it extrapolates directly.
      eta_ms: finished ? 0 : perChunkMs === null ? null : Math.round((mapLeft + reduceLeft) * perChunkMs),
      runs: s.runs + 1,
      ...(s.paused && s.pausedFor && { paused_reason: s.pausedFor }),
      ...(s.paused && s.resumeAtMs !== undefined && { resumes_at: new Date(s.resumeAtMs).toISOString() }),
    };
  };
  const showDetails = () => {
    const p = progress();
    setCurrentDetails(
      `**${p.status} · ${p.phase}** — chunks ${p.chunks.done}/${p.chunks.total}` +
        `${p.chunks.failed ? ` (${p.chunks.failed} failed)` : ''} · escalations ${p.escalations} · \\$${p.cost_usd.toFixed(6)} (all on ${strongest.name}: \\$${p.baseline_cost_usd.toFixed(6)}) · run ${p.runs}`,
    );
  };

  // Until the workflow has returned, a finished job is still writing its result.
  setHandler(progressQuery, () => {
    const p = progress();
    return p.status === 'completed' || p.status === 'cancelled' ? { ...p, status: 'finishing' } : p;
  });
  /** Pauses or resumes; a caller's pause or resume replaces a pause the job made itself (and its automatic resume). */
  const setPaused = (paused: boolean, why?: { reason: string; resumeAtMs?: number | undefined }) => {
    s.paused = paused;
    delete s.pausedFor;
    delete s.resumeAtMs;
    if (why) Object.assign(s, { pausedFor: why.reason }, why.resumeAtMs !== undefined && { resumeAtMs: why.resumeAtMs });
    tick++;
    showDetails();
  };
  setHandler(pauseSignal, () => setPaused(true));
  setHandler(resumeSignal, () => setPaused(false));

  const flush = async () => {
    if (unsaved.length > 0) {
      const batch = unsaved;
      unsaved = [];
      await docs.saveUnitResults.executeWithOptions({ startToCloseTimeout: '2m', summary: `save ${batch.length} results · ${phaseKey(s.phase)}` }, [
        { jobId, phase: phaseKey(s.phase), results: batch },
      ]);
    }
    upsertSearchAttributes([
      { key: SearchAttr.DocumentChunksDone, value: s.chunksDone },
      { key: SearchAttr.DocumentChunksTotal, value: s.chunksTotal },
      { key: SearchAttr.Escalations, value: s.escalations },
      { key: SearchAttr.CostUsd, value: s.costUsd },
    ]);
  };

  const unitWorkflowId = (index: number) => {
    const base = s.phase.kind === 'map' ? `${jobId}-chunk-${index + 1}` : `${jobId}-reduce-${s.phase.level}-${index + 1}`;
    return s.round > 0 ? `${base}-rerun-${s.round}` : base;
  };

  const record = (r: UnitResult) => {
    s.costUsd = roundUsd(s.costUsd + r.costUsd);
    s.baselineCostUsd = roundUsd(s.baselineCostUsd + r.baselineCostUsd);
    s.escalations += r.escalations;
    if (r.ok) {
      if (s.phase.kind === 'map') s.chunksDone++;
      else s.reduceUnitsDone++;
    } else s.failed.push(r.index);
    unsaved.push(r);
  };

  /**
   * A job submitted with an API key reserves each unit's worst-case cost in the key's budget
   * before its cascade starts, when the key has a budget or rate limit as the keys file says now
   * (the cascade settles it when it ends, as a chat request's does): 'reserved', or 'free' for a
   * key without limits. Null when the unit cannot start now; what the job does meanwhile is
   * `chunkWait`'s decision (workflows/budget.ts): wait for one of its own units, sleep, or pause.
   */
  const admit = async (workflowId: string, params: ChatParams): Promise<'reserved' | 'free' | null> => {
    if (!input.key) return 'free';
    const unit = { params, ...cascade };
    const outcome = await keyBudget.reserveForKey({
      keyId: input.key.keyId,
      tier: input.key.tier,
      ...(input.key.budget && { limits: input.key.budget.limits }),
      request: { id: workflowId, usd: worstCaseCostUsd(unit), tokens: estimatedTokens(unit), ttlMs: cascade.policy.deadline_ms + RESERVATION_GRACE_MS },
    });
    if ('reserved' in outcome) return outcome.reserved ? 'reserved' : 'free';
    const wait = chunkWait(outcome.refused, running.size);
    const seen = tick;
    if (wait.kind === 'own-chunk') await condition(() => tick !== seen);
    else if (wait.kind === 'sleep') await sleep(wait.ms);
    else setPaused(true, wait);
    return null;
  };

  /** Runs one unit as a child cascade workflow; its outcome is recorded, never thrown. */
  const startUnit = (index: number, params: ChatParams, reserved: boolean) => {
    const workflowId = unitWorkflowId(index);
    const childInput: CascadeInput = {
      requestId: workflowId,
      requestHash: '',
      params,
      ...cascade,
      ...(input.key && { caller: { keyId: input.key.keyId, tier: input.key.tier } }),
      ...(reserved && input.key && { budget: { keyWorkflowId: keyBudgetWorkflowId(input.key.keyId) } }),
    };
    const label =
      s.phase.kind === 'map' ? `chunk ${index + 1}/${s.units} · ${task}` : `reduce level ${s.phase.level} · group ${index + 1}/${s.units} · ${task}`;
    const base = { index, workflowId, escalations: 0, costUsd: 0, baselineCostUsd: 0, degraded: false };
    const p = executeChild(cascadeWorkflow, {
      workflowId,
      args: [childInput],
      staticSummary: `${label}${s.round > 0 ? ` (rerun ${s.round})` : ''}`,
      typedSearchAttributes: [
        { key: SearchAttr.Policy, value: cascade.policy.name },
        { key: SearchAttr.DocumentTask, value: task },
        ...(input.key ? [{ key: SearchAttr.KeyId, value: input.key.keyId }] : []),
      ],
    }).then(
      (result) =>
        record({
          ...base,
          ok: true,
          content: result.content,
          model: result.model,
          finalStep: result.cascade.final_step,
          escalations: result.cascade.escalations,
          costUsd: result.cascade.cost_usd,
          baselineCostUsd: costOfUsage(strongest, result.usage),
          degraded: result.cascade.degraded === true,
          error: null,
        }),
      (err: unknown) => {
        if (isCancellation(err)) return; // the job is being cancelled: neither done nor failed
        const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
        const trace = cause instanceof ApplicationFailure ? (cause.details?.[0] as CascadeTrace | undefined) : undefined;
        const type = cause instanceof ApplicationFailure ? cause.type : null;
        record({
          ...base,
          ok: false,
          content: null,
          model: null,
          finalStep: null,
          escalations: trace?.escalations ?? 0,
          costUsd: trace?.cost_usd ?? 0,
          error: `${type ?? 'failed'}: ${(cause as Error | undefined)?.message ?? String(err)}`,
        });
      },
    );
    running.set(
      index,
      p.finally(() => {
        running.delete(index);
        tick++;
        showDetails();
      }),
    );
  };

  const textOf = async (k: number, order: number[] | null, count: number): Promise<string> => {
    const index = order ? order[k]! : k;
    if (!texts.has(index)) {
      const indices: number[] = [];
      for (let j = k; j < count && indices.length < loadBatch(input.chunkTokens, input.concurrency); j++) indices.push(order ? order[j]! : j);
      const phase = phaseKey(s.phase);
      const loaded = await docs.loadUnits.executeWithOptions(
        { startToCloseTimeout: '2m', summary: `load ${phase} units ${indices[0]! + 1}–${indices.at(-1)! + 1}` },
        [{ jobId, phase, indices }],
      );
      indices.forEach((i, j) => texts.set(i, loaded[j]!));
    }
    const text = texts.get(index)!;
    texts.delete(index);
    return text;
  };

  /** Keeps `concurrency` units running; false when the run must continue as new first. */
  const runRound = async (): Promise<boolean> => {
    const order = s.round === 0 ? null : s.roundUnits;
    const count = order ? order.length : s.units;
    const mustContinue = () => {
      const info = workflowInfo();
      return info.continueAsNewSuggested || info.historyLength >= input.historyEventsLimit || info.historySize >= HISTORY_BYTES_LIMIT;
    };
    for (;;) {
      while (!s.paused && running.size < input.concurrency && s.next < count && !mustContinue()) {
        const k = s.next;
        const index = order ? order[k]! : k;
        const text = await textOf(k, order, count);
        const params = unitParams(task, options, s.phase, index, s.units, text);
        const admitted = await admit(unitWorkflowId(index), params);
        if (!admitted) {
          texts.set(index, text); // started later, after a resume or the rate limit's wait
          continue;
        }
        s.next++;
        startUnit(index, params, admitted === 'reserved');
      }
      if (unsaved.length >= SAVE_BATCH) await flush();
      if (running.size === 0) {
        if (s.next >= count) return true;
        if (mustContinue()) return false;
        const seen = tick;
        // Paused for its key's budget: it resumes by itself when the budget's day or month begins.
        if (s.paused && s.resumeAtMs !== undefined) {
          if (!(await condition(() => tick !== seen, Math.max(1, s.resumeAtMs - Date.now())))) setPaused(false);
        } else await condition(() => tick !== seen);
        continue;
      }
      const seen = tick;
      await condition(() => tick !== seen);
    }
  };

  /** Next reduce level for summarize/qa; false when the job has its final answer. */
  const nextPhase = async (): Promise<boolean> => {
    if (!reduced || (s.phase.kind === 'reduce' && s.units <= 1)) return false;
    const level = s.phase.kind === 'map' ? 1 : s.phase.level + 1;
    const to = phaseKey({ kind: 'reduce', level });
    const { groups } = await docs.planReduce.executeWithOptions({ startToCloseTimeout: '2m', summary: `plan ${to}` }, [
      { jobId, task, from: phaseKey(s.phase), fromUnits: s.units, to, budgetTokens: input.chunkTokens },
    ]);
    if (groups === 0) return false;
    Object.assign(s, { phase: { kind: 'reduce', level }, units: groups, next: 0, round: 0, roundUnits: [], failed: [] });
    return true;
  };

  const finish = async (final: 'completed' | 'cancelled'): Promise<DocumentJobOutcome> => {
    status = final;
    const p = progress();
    const finalPhase = reduced && s.phase.kind === 'reduce' && s.units === 1 && final === 'completed' ? phaseKey(s.phase) : null;
    const { resultKey } = await docs.finishJob.executeWithOptions({ startToCloseTimeout: '5m', summary: `write result (${final})` }, [
      { jobId, task, options, progress: p, chunks: s.chunksTotal, finalPhase },
    ]);
    let delivered: DocumentJobOutcome['webhook'] = 'none';
    if (input.webhookUrl) {
      try {
        await webhook.notifyWebhook.executeWithOptions({ startToCloseTimeout: '30s', summary: 'webhook' }, [
          { url: input.webhookUrl, body: { id: jobId, object: 'document.job', status: final, progress: p } },
        ]);
        delivered = 'delivered';
      } catch {
        delivered = 'failed'; // the result is kept either way; the caller can still poll
      }
    }
    showDetails();
    return { jobId, status: final, progress: p, resultKey, webhook: delivered };
  };

  try {
    if (!input.carried) {
      const { chunks } = await docs.prepareDocument.executeWithOptions({ startToCloseTimeout: '5m', summary: 'chunk the document' }, [
        { jobId, documentKey: input.documentKey, chunkTokens: input.chunkTokens, overlapTokens: input.overlapTokens },
      ]);
      Object.assign(s, { units: chunks, chunksTotal: chunks, mapStartedAtMs: Date.now() });
      upsertSearchAttributes([{ key: SearchAttr.DocumentChunksTotal, value: chunks }]);
    }
    showDetails();
    for (;;) {
      const roundFinished = await runRound();
      await flush();
      if (!roundFinished) return await continueAsNew<typeof documentWorkflow>({ ...input, carried: { ...s, runs: s.runs + 1 } });
      // Only what failed is run again, never the whole document.
      if (s.failed.length > 0 && s.round < input.retryFailedRounds) {
        waitingToRerun = true;
        showDetails();
        await sleep(input.retryFailedAfterMs);
        waitingToRerun = false;
        Object.assign(s, { round: s.round + 1, roundUnits: s.failed, failed: [], next: 0 });
        continue;
      }
      if (s.phase.kind === 'map') s.chunksFailed = s.failed.length;
      if (!(await nextPhase())) break;
    }
    return await finish('completed');
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Cancelled: what was already paid for is kept in the result.
    return await CancellationScope.nonCancellable(async () => {
      await Promise.allSettled(running.values());
      if (s.phase.kind === 'map') s.chunksFailed = s.failed.length;
      await flush();
      return finish('cancelled');
    });
  }
}
