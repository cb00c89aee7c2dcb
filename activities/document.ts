/**
 * Activities of document jobs, on the router task queue: they move texts and results between the
 * document store and the workflow in small pieces, so no large payload enters the history.
 * Every activity is idempotent (a retry rewrites the same keys).
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import { ErrorType } from '../common/errors.js';
import { parseJsonAnswer } from '../evaluators/text.js';
import { validationFailures } from '../evaluators/validators.js';
import type { DocumentTask, JobProgress, TaskOptions, UnitResult } from '../workflows/document-types.js';
import { storeKeys } from '../workflows/document-types.js';
import { NOT_FOUND } from '../workflows/document-tasks.js';
import { chunkText } from './document-chunking.js';
import type { DocumentStore } from './document-store.js';
import { postWebhook, WebhookRejected } from './document-webhook.js';

export interface DocumentActivityDeps {
  store: DocumentStore;
  logger: Logger;
  webhookAllowHosts: readonly string[];
}

export interface FinishJobInput {
  jobId: string;
  task: DocumentTask;
  options: TaskOptions;
  progress: JobProgress;
  /** Units of the map phase (the chunks). */
  chunks: number;
  /** The reduce phase whose single unit holds the final answer (summarize, qa), when it was reached. */
  finalPhase: string | null;
}

/** Reads many keys with bounded parallelism (a 10,000-chunk job must not open 10,000 files at once). */
async function readMany<T>(store: DocumentStore, keys: string[], parse: (s: string) => T): Promise<(T | null)[]> {
  const out: (T | null)[] = new Array(keys.length).fill(null);
  for (let i = 0; i < keys.length; i += 64) {
    const batch = await Promise.all(keys.slice(i, i + 64).map((k) => store.get(k)));
    batch.forEach((s, j) => (out[i + j] = s === null ? null : parse(s)));
  }
  return out;
}

const isNotFound = (text: string) =>
  text
    .split('\n')
    .map((l) => l.replace(/^\s*\d+[.)]\s*/, '').trim())
    .filter(Boolean)
    .every((l) => l.toUpperCase().startsWith(NOT_FOUND));

export function createDocumentActivities({ store, logger, webhookAllowHosts }: DocumentActivityDeps) {
  const results = (jobId: string, phase: string, units: number) =>
    readMany(
      store,
      Array.from({ length: units }, (_, i) => storeKeys.unitResult(jobId, phase, i)),
      (s) => JSON.parse(s) as UnitResult,
    );

  return {
    /** Chunks the stored document; each chunk becomes one input of the map phase. */
    async prepareDocument(input: {
      jobId: string;
      documentKey: string;
      chunkTokens: number;
      overlapTokens: number;
    }): Promise<{ chunks: number; chars: number }> {
      const text = await store.get(input.documentKey);
      if (text === null)
        throw ApplicationFailure.create({ type: ErrorType.InvalidRequest, message: `document of job ${input.jobId} is not in the store`, nonRetryable: true });
      const chunks = chunkText(text, input);
      for (let i = 0; i < chunks.length; i += 64) {
        await Promise.all(chunks.slice(i, i + 64).map((c, j) => store.put(storeKeys.unitInput(input.jobId, 'map', i + j), c)));
      }
      logger.info({ job_id: input.jobId, chunks: chunks.length, chars: text.length }, 'document chunked');
      return { chunks: chunks.length, chars: text.length };
    },

    async loadUnits(input: { jobId: string; phase: string; indices: number[] }): Promise<string[]> {
      const texts = await readMany(
        store,
        input.indices.map((i) => storeKeys.unitInput(input.jobId, input.phase, i)),
        (s) => s,
      );
      return texts.map((t, k) => {
        if (t === null) throw new Error(`unit ${input.indices[k]} of ${input.phase} is missing from the store`);
        return t;
      });
    },

    async saveUnitResults(input: { jobId: string; phase: string; results: UnitResult[] }): Promise<void> {
      await Promise.all(input.results.map((r) => store.put(storeKeys.unitResult(input.jobId, input.phase, r.index), JSON.stringify(r))));
    },

    /**
     * Groups the answers of one phase into inputs of the next reduce level, each within the
     * token budget but with at least two answers, so every level has fewer units than the last.
     */
    async planReduce(input: {
      jobId: string;
      task: DocumentTask;
      from: string;
      fromUnits: number;
      to: string;
      budgetTokens: number;
    }): Promise<{ groups: number }> {
      const firstLevel = input.from === 'map';
      const entries: string[] = [];
      for (const r of await results(input.jobId, input.from, input.fromUnits)) {
        if (!r?.ok || !r.content) continue;
        if (input.task === 'qa' && firstLevel) {
          if (!isNotFound(r.content)) entries.push(`[chunk ${r.index + 1}]\n${r.content.trim()}`);
        } else entries.push(r.content.trim());
      }
      const budget = input.budgetTokens * 4;
      const groups: string[][] = [];
      let size = 0;
      for (const e of entries) {
        const last = groups.at(-1);
        if (!last || (size + e.length > budget && last.length >= 2)) {
          groups.push([e]);
          size = e.length;
        } else {
          last.push(e);
          size += e.length;
        }
      }
      // A single-entry last group would not shrink the level: merge it into the one before.
      if (groups.length > 1 && groups.at(-1)!.length === 1) groups.at(-2)!.push(...groups.pop()!);
      await Promise.all(groups.map((g, i) => store.put(storeKeys.unitInput(input.jobId, input.to, i), g.join('\n\n---\n\n'))));
      return { groups: groups.length };
    },

    /** Writes the job's result document and returns its key (the workflow returns only the key). */
    async finishJob(input: FinishJobInput): Promise<{ resultKey: string }> {
      const chunks = await results(input.jobId, 'map', input.chunks);
      const failed = chunks.flatMap((r, i) => (r && !r.ok ? [{ chunk: i + 1, error: r.error, workflow_id: r.workflowId }] : []));
      const final = input.finalPhase ? (await results(input.jobId, input.finalPhase, 1))[0] : null;
      const base = {
        id: input.jobId,
        task: input.task,
        status: input.progress.status,
        chunks: input.progress.chunks,
        escalations: input.progress.escalations,
        cost_usd: input.progress.cost_usd,
        baseline_cost_usd: input.progress.baseline_cost_usd,
        failed_chunks: failed,
      };
      const perChunk = <T>(fn: (r: UnitResult) => T) =>
        chunks.flatMap((r, i) => (r?.ok ? [{ chunk: i + 1, model: r.model, escalations: r.escalations, ...fn(r) }] : []));
      let body: Record<string, unknown>;
      switch (input.task) {
        case 'summarize':
          body = { ...base, summary: final?.ok ? final.content : null, chunk_summaries: perChunk((r) => ({ summary: r.content })) };
          break;
        case 'qa': {
          const answer = final?.ok ? (final.content ?? '') : null;
          const cited = answer ? [...new Set([...answer.matchAll(/\[chunk (\d+)\]/gi)].map((m) => Number(m[1])))].sort((a, b) => a - b) : [];
          const found = perChunk((r) => ({ answer: r.content })).filter((c) => !isNotFound(c.answer ?? ''));
          body = { ...base, questions: input.options.questions, answer, cited_chunks: cited, chunk_answers: found };
          break;
        }
        case 'extract': {
          const responseFormat = { type: 'json_schema' as const, schema: input.options.schema };
          const items = perChunk((r) => {
            const parsed = parseJsonAnswer(r.content ?? '');
            const errors = validationFailures(
              { messages: [], answer: r.content ?? '', model: r.model ?? '', step: 0, finishReason: 'stop', logprobs: null, responseFormat },
              ['json'],
            );
            return { valid: errors.length === 0, data: parsed.ok ? parsed.value : null, ...(errors.length && { errors, raw: r.content }) };
          });
          body = {
            ...base,
            schema: input.options.schema,
            merged: mergeExtractions(items.filter((i) => i.valid).map((i) => i.data)),
            invalid_chunks: items.filter((i) => !i.valid).map((i) => i.chunk),
            items,
          };
          break;
        }
        case 'classify': {
          const labels = input.options.labels ?? [];
          const items = perChunk((r) => ({ label: matchLabel(r.content ?? '', labels), raw: r.content }));
          const counts: Record<string, number> = Object.fromEntries(labels.map((l) => [l, 0]));
          for (const i of items) if (i.label) counts[i.label] = (counts[i.label] ?? 0) + 1;
          const overall = labels.reduce<string | null>((best, l) => (counts[l]! > 0 && (best === null || counts[l]! > counts[best]!) ? l : best), null);
          body = { ...base, labels, overall, counts, unlabelled_chunks: items.filter((i) => !i.label).map((i) => i.chunk), items };
          break;
        }
      }
      const resultKey = storeKeys.result(input.jobId);
      await store.put(resultKey, JSON.stringify(body));
      return { resultKey };
    },

    async notifyWebhook(input: { url: string; body: unknown }): Promise<void> {
      try {
        await postWebhook(input.url, webhookAllowHosts, input.body);
      } catch (err) {
        if (err instanceof WebhookRejected) throw ApplicationFailure.create({ type: ErrorType.InvalidRequest, message: err.message, nonRetryable: true });
        throw err;
      }
    },
  };
}

/**
 * The label of a `{"label": …}` answer (what classify asks for), else the first allowed label the
 * answer names (case-insensitive, whole words: prose from a model without structured output), or null.
 */
export function matchLabel(answer: string, labels: readonly string[]): string | null {
  const parsed = parseJsonAnswer(answer);
  const named = parsed.ok && parsed.value && typeof parsed.value === 'object' ? (parsed.value as { label?: unknown }).label : undefined;
  if (typeof named === 'string') answer = named;
  let best: { label: string; at: number } | null = null;
  for (const label of labels) {
    const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const at = answer.search(new RegExp(`(^|[^\\p{L}\\p{N}])${escaped}($|[^\\p{L}\\p{N}])`, 'iu'));
    if (at >= 0 && (!best || at < best.at)) best = { label, at };
  }
  return best?.label ?? null;
}

/** Objects merge key by key (arrays concatenated, the first non-null value otherwise); other values are listed. */
export function mergeExtractions(values: unknown[]): unknown {
  if (values.length === 0) return null;
  if (!values.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v))) return values.flatMap((v) => (Array.isArray(v) ? v : [v]));
  const merged: Record<string, unknown> = {};
  for (const v of values as Record<string, unknown>[]) {
    for (const [k, x] of Object.entries(v)) {
      if (Array.isArray(x)) merged[k] = [...((merged[k] as unknown[] | undefined) ?? []), ...x];
      else if (merged[k] === undefined || merged[k] === null) merged[k] = x;
    }
  }
  return merged;
}

export type DocumentActivities = ReturnType<typeof createDocumentActivities>;
