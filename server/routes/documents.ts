/**
 * /v1/documents — long-document jobs. POST stores the document and starts a `documentWorkflow`
 * (its id is the job id) and answers 202 at once; GET shows progress (a workflow query) and, when
 * done, the result from the document store; DELETE cancels (chunks already paid for stay in the
 * result); POST …/pause and …/resume signal the job.
 */
import { randomUUID } from 'node:crypto';
import express, { type Request, type RequestHandler, type Router } from 'express';
import multer from 'multer';
import AjvModule from 'ajv';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import type { Logger } from 'pino';
import { SearchAttr } from '../../common/names.js';
import { modelsForPolicy, type CascadeConfig } from '../../config/load.js';
import { createDocumentStore, type DocumentStore } from '../../activities/document-store.js';
import { checkWebhookUrl, WebhookRejected } from '../../activities/document-webhook.js';
import { policyForTask } from '../../workflows/document-tasks.js';
import {
  pauseSignal,
  progressQuery,
  resumeSignal,
  storeKeys,
  type DocumentJobInput,
  type DocumentJobOutcome,
  type JobProgress,
  type TaskOptions,
} from '../../workflows/document-types.js';
import type { documentWorkflow } from '../../workflows/index.js';
import { ApiError } from '../errors.js';
import { callerKey } from '../auth.js';
import type { Budgets } from '../budgets.js';
import { idempotencyKeyOf, idempotentWorkflowId, keyReused, sha256 } from '../idempotency.js';
import { documentRequestSchema, type DocumentRequest } from './documents.schema.js';
import { uploadedText } from './documents-text.js';

export interface DocumentRoutesDeps {
  config: CascadeConfig;
  client: Client;
  logger: Logger;
  /** Keys' tiers and budgets: a job runs what the key may use, and each chunk reserves in its budget. */
  budgets: Budgets;
  store?: DocumentStore;
}

type AjvInstance = import('ajv').default;
const Ajv = (AjvModule as unknown as { default?: typeof AjvModule }).default ?? AjvModule;
const ajv: AjvInstance = new (Ajv as unknown as new (o: object) => AjvInstance)({ strict: false });

export function documentsRoutes({ config, client, logger, budgets, store = createDocumentStore(config) }: DocumentRoutesDeps): Router {
  const limits = config.raw.documents;
  const forwarded = config.raw.server.forward_headers.map((h) => h.toLowerCase());
  const router = express.Router();
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: limits.max_bytes, files: 1, fields: 32, fieldSize: 1_048_576 } }).single('file');
  const json = express.json({ limit: limits.max_bytes + 65_536, type: () => true, strict: false });
  const parseBody: RequestHandler = (req, res, next) => {
    if (!req.is('multipart/form-data')) return json(req, res, next);
    // multer reads the raw stream: a compressed upload would fail as a malformed form.
    const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
    if (encoding !== 'identity')
      return next(
        new ApiError(
          415,
          `Content-Encoding ${encoding} is not supported on multipart uploads; send the form uncompressed`,
          'invalid_request_error',
          'unsupported_encoding',
        ),
      );
    upload(req, res, (err: unknown) => {
      if (err instanceof multer.MulterError) {
        if (err.code === 'LIMIT_FILE_SIZE') return next(tooLarge(limits.max_bytes));
        return next(ApiError.invalid(`Invalid upload: ${err.message}${err.field ? ` (${err.field})` : ''}`, err.field ?? null, 'invalid_upload'));
      }
      next(err);
    });
  };

  router.post('/', parseBody, async (req, res, next) => {
    try {
      const body = parseRequest(req.body);
      const text = await documentText(req, body, limits.max_bytes);
      // The key's tier picks what `cascade` runs and which policies it may use, as for chat.
      const key = callerKey(res.locals);
      const target = budgets.target(key, body.model, body.task);
      if (!target) throw ApiError.modelNotFound(body.model, config.policies.keys());
      const budgetKey = budgets.budgetKey(key);
      const options = taskOptions(body);
      let webhookUrl: string | undefined;
      if (body.webhook_url !== undefined) {
        try {
          webhookUrl = checkWebhookUrl(body.webhook_url, limits.webhook_allow_hosts).href;
        } catch (err) {
          if (err instanceof WebhookRejected) throw ApiError.invalid(err.message, 'webhook_url', 'webhook_not_allowed');
          throw err;
        }
      }

      const policy = policyForTask(body.task, target.policy);
      const idempotencyKey = idempotencyKeyOf(req);
      const requestHash = sha256(JSON.stringify([text, body.task, options, body.model, webhookUrl ?? null]));
      const jobId = idempotencyKey ? idempotentWorkflowId('doc', idempotencyKey, key?.id) : `doc-${randomUUID()}`;
      const accepted = (status: string) => ({ id: jobId, object: 'document.job', task: body.task, status, policy: policy.name });
      /** A job already started with this key: the same job again, or a 409 for another body. */
      const replay = (existing: WorkflowExecutionDescription) => {
        if (existing.memo?.requestHash !== requestHash) throw keyReused();
        res.setHeader('idempotent-replayed', 'true');
        res
          .status(202)
          .location(`/v1/documents/${jobId}`)
          .json(accepted(jobStatusName(existing.status.name)));
      };
      const existing = idempotencyKey ? await describeJob(client, jobId) : null;
      if (existing) return replay(existing);

      const documentKey = storeKeys.document(jobId, requestHash);
      const input: DocumentJobInput = {
        jobId,
        documentKey,
        task: body.task,
        options,
        cascade: { policy, models: modelsForPolicy(config, policy), retry: config.retry, forwardHeaders: pickHeaders(req.headers, forwarded) },
        chunkTokens: limits.chunk_tokens,
        overlapTokens: Math.min(limits.overlap_tokens, Math.floor(limits.chunk_tokens / 2)),
        concurrency: limits.concurrency,
        historyEventsLimit: limits.history_events_limit,
        retryFailedRounds: limits.retry_failed_rounds,
        retryFailedAfterMs: limits.retry_failed_after_ms,
        ...(webhookUrl && { webhookUrl }),
        ...(key && { key: { keyId: key.id, tier: key.tier, ...(budgetKey && { budget: budgetKey }) } }),
        submittedAtMs: Date.now(),
      };
      await store.put(documentKey, text);
      const name = body.name ?? req.file?.originalname ?? `${Buffer.byteLength(text)} bytes`;
      try {
        await client.workflow.start<typeof documentWorkflow>('documentWorkflow', {
          taskQueue: config.raw.temporal.task_queue,
          workflowId: jobId,
          args: [input],
          memo: { requestHash },
          // A finished job is not run again for the same key: its result stays readable.
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          typedSearchAttributes: [
            { key: SearchAttr.Policy, value: policy.name },
            { key: SearchAttr.DocumentTask, value: body.task },
            { key: SearchAttr.DocumentChunksDone, value: 0 },
            { key: SearchAttr.DocumentChunksTotal, value: 0 },
            ...(key ? [{ key: SearchAttr.KeyId, value: key.id }] : []),
          ],
          staticSummary: `document · ${body.task} · ${name.replace(/\s+/g, ' ').slice(0, 80)} · ${policy.name}`,
        });
      } catch (err) {
        // Two requests with one key at the same moment: the second finds the first's job.
        const raced = idempotencyKey && err instanceof WorkflowExecutionAlreadyStartedError ? await describeJob(client, jobId) : null;
        if (raced) return replay(raced);
        throw err;
      }
      logger.info({ job_id: jobId, task: body.task, policy: policy.name, bytes: Buffer.byteLength(text) }, 'document job started');
      res.status(202).location(`/v1/documents/${jobId}`).json(accepted('running'));
    } catch (err) {
      next(err);
    }
  });

  router.get('/:id', async (req, res, next) => {
    try {
      res.json(await jobView(client, store, req.params.id!, callerKey(res.locals)?.id));
    } catch (err) {
      next(err);
    }
  });

  router.delete('/:id', async (req, res, next) => {
    try {
      const keyId = callerKey(res.locals)?.id;
      const { handle, running } = await findJob(client, req.params.id!, keyId);
      if (!running) return res.json(await jobView(client, store, req.params.id!, keyId));
      await handle.cancel();
      logger.info({ job_id: req.params.id }, 'document job cancel requested');
      res.status(202).json({ id: req.params.id, object: 'document.job', status: 'cancelling' });
    } catch (err) {
      next(err);
    }
  });

  for (const [action, signal] of [
    ['pause', pauseSignal],
    ['resume', resumeSignal],
  ] as const) {
    router.post(`/:id/${action}`, async (req, res, next) => {
      try {
        const { handle, running } = await findJob(client, req.params.id!, callerKey(res.locals)?.id);
        if (!running) throw new ApiError(409, `Job ${req.params.id} is no longer running`, 'invalid_request_error', 'job_not_running');
        await handle.signal(signal);
        res.status(202).json({ id: req.params.id, object: 'document.job', status: action === 'pause' ? 'paused' : 'running' });
      } catch (err) {
        next(err);
      }
    });
  }
  return router;
}

function parseRequest(raw: unknown): DocumentRequest {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw ApiError.invalid('Request body must be a JSON object or a multipart form with a file', null, 'invalid_body');
  const parsed = documentRequestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const param = issue.path.map(String).join('.') || null;
    throw ApiError.invalid(`Invalid request${param ? ` at '${param}'` : ''}: ${issue.message}`, param, param === 'task' ? 'unknown_task' : 'invalid_value');
  }
  return parsed.data;
}

const tooLarge = (max: number) =>
  new ApiError(413, `The document exceeds the limit of ${max} bytes (documents.max_bytes)`, 'invalid_request_error', 'document_too_large', 'text');

async function documentText(req: Request, body: DocumentRequest, maxBytes: number): Promise<string> {
  let text: string;
  if (req.file) text = await uploadedText(req.file);
  else {
    if (body.text === undefined) throw ApiError.invalid("Send the document as 'text' (JSON) or as a multipart 'file'", 'text', 'missing_document');
    text = body.text;
  }
  if (Buffer.byteLength(text) > maxBytes) throw tooLarge(maxBytes);
  if (text.trim() === '') throw ApiError.invalid('The document is empty', req.file ? 'file' : 'text', 'empty_document');
  return text;
}

function taskOptions(body: DocumentRequest): TaskOptions {
  const options: TaskOptions = {
    ...(body.instructions && { instructions: body.instructions }),
    ...(body.max_output_tokens && { maxOutputTokens: body.max_output_tokens }),
  };
  switch (body.task) {
    case 'extract':
      if (!body.schema) throw ApiError.invalid("Task 'extract' needs a JSON schema in 'schema'", 'schema', 'invalid_schema');
      try {
        ajv.compile(body.schema);
      } catch (err) {
        throw ApiError.invalid(`'schema' is not a valid JSON schema: ${(err as Error).message}`, 'schema', 'invalid_schema');
      }
      return { ...options, schema: body.schema };
    case 'classify':
      if (!body.labels) throw ApiError.invalid("Task 'classify' needs at least two 'labels'", 'labels', 'invalid_value');
      return { ...options, labels: body.labels };
    case 'qa':
      if (!body.questions) throw ApiError.invalid("Task 'qa' needs 'questions'", 'questions', 'invalid_value');
      return { ...options, questions: body.questions };
    case 'summarize':
      return options;
  }
}

function pickHeaders(headers: Record<string, string | string[] | undefined>, names: string[]): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const name of names) {
    const v = headers[name];
    if (typeof v === 'string') out[name] = v.slice(0, 1024);
  }
  return Object.keys(out).length ? out : undefined;
}

/**
 * The job, for the caller with API key `keyId`: a job another key submitted is not found (404,
 * as if it did not exist). Jobs submitted without a key (an open API) are anyone's.
 */
async function findJob(
  client: Client,
  id: string,
  keyId: string | undefined,
): Promise<{ handle: WorkflowHandle<typeof documentWorkflow>; running: boolean; status: string }> {
  const notFound = () => new ApiError(404, `No document job ${id}`, 'invalid_request_error', 'job_not_found', 'id');
  if (!/^doc-([0-9a-f-]{36}|idem-[0-9a-f]{40})$/.test(id)) throw notFound();
  const desc = await describeJob(client, id);
  if (desc?.type !== 'documentWorkflow') throw notFound();
  const owner = desc.typedSearchAttributes.get(SearchAttr.KeyId);
  if (keyId && owner && owner !== keyId) throw notFound();
  return { handle: client.workflow.getHandle<typeof documentWorkflow>(id), running: desc.status.name === 'RUNNING', status: desc.status.name };
}

async function jobView(client: Client, store: DocumentStore, id: string, keyId: string | undefined): Promise<Record<string, unknown>> {
  const { handle, status } = await findJob(client, id, keyId);
  const base = { id, object: 'document.job' };
  if (status === 'RUNNING') {
    // A job whose router workers are all down cannot answer; say so instead of hanging.
    const progress: JobProgress | null = await client.connection.withDeadline(Date.now() + 3000, () => handle.query(progressQuery)).catch(() => null);
    return progress ? { ...base, ...progress } : { ...base, status: 'running', progress_unavailable: true };
  }
  if (status === 'COMPLETED') {
    const outcome: DocumentJobOutcome = await handle.result();
    const text = await store.get(outcome.resultKey);
    return { ...base, ...outcome.progress, status: outcome.status, webhook: outcome.webhook, result: text ? JSON.parse(text) : null };
  }
  const failure = await handle.result().then(
    () => null,
    (err: Error) => (err.cause as Error | undefined)?.message ?? err.message,
  );
  return { ...base, status: jobStatusName(status), error: { message: failure ?? status, code: status.toLowerCase() } };
}

/** The workflow's description, or null when there is none with this id. */
async function describeJob(client: Client, id: string): Promise<WorkflowExecutionDescription | null> {
  try {
    return await client.workflow.getHandle(id).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

/** A workflow status as the job API names it. */
function jobStatusName(status: string): string {
  if (status === 'RUNNING' || status === 'COMPLETED') return status.toLowerCase();
  return status === 'CANCELED' ? 'cancelled' : 'failed';
}
