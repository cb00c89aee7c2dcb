/**
 * Document jobs end to end on the real stack: API → documentWorkflow → one child cascade
 * workflow per chunk → pool workers → farm. The farm's attempt log shows the model calls made.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SearchAttr } from '../../common/names.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { documentsClient, documentText, finished, minimalPdf, sleep } from './helpers.js';

let stack: Stack;
let post: ReturnType<typeof documentsClient>['post'];
let start: ReturnType<typeof documentsClient>['start'];
let job: ReturnType<typeof documentsClient>['job'];
let waitFor: ReturnType<typeof documentsClient>['waitFor'];
let callsByChunk: ReturnType<typeof documentsClient>['callsByUnit'];
let completedCalls: ReturnType<typeof documentsClient>['completedCalls'];
let assertCompletedCallsNotRepeated: ReturnType<typeof documentsClient>['assertCompletedCallsNotRepeated'];
let assertEachCallPaidOnce: ReturnType<typeof documentsClient>['assertEachCallPaidOnce'];

before(async () => {
  stack = await startStack({
    poolProcesses: ['gpu-a'],
    configure: (raw) => {
      raw.server.forward_headers.push('x-farm-output-tokens');
      raw.documents.chunk_tokens = 64;
      raw.documents.overlap_tokens = 8;
      raw.documents.concurrency = 4;
      raw.documents.max_bytes = 200_000;
      raw.documents.history_events_limit = 150; // small, so a 12-chunk job continues as new at least once
      raw.documents.retry_failed_after_ms = 1500;
      raw.breaker.failure_threshold = 1000; // the outage below must not leave circuits open for the rerun
    },
  });
  ({ post, start, job, waitFor, callsByUnit: callsByChunk, completedCalls, assertCompletedCallsNotRepeated, assertEachCallPaidOnce } = documentsClient(stack));
});
after(async () => {
  await stack?.close();
});

describe('document jobs', () => {
  it('summarize: every chunk through the cascade, then a combined summary; history continues as new', async () => {
    const id = await start({ task: 'summarize', text: documentText(12) }, { 'x-farm-output-tokens': '20' });
    const first = await job(id);
    assert.ok(['running', 'completed'].includes(first.status));
    const done = await waitFor(id, finished);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const r = done.result;
    assert.ok(done.chunks.total >= 10, `chunks: ${done.chunks.total}`);
    assert.equal(done.chunks.done, done.chunks.total);
    assert.equal(r.chunk_summaries.length, done.chunks.total);
    assert.match(r.summary, /^\[simulated\]/);
    assert.ok(done.cost_usd > 0 && done.cost_usd < done.baseline_cost_usd, `cost ${done.cost_usd} vs all-large ${done.baseline_cost_usd}`);
    assert.ok(done.runs >= 2, `continued as new: runs ${done.runs}`);
    // Escalations happened on some chunks only (sim-small is confident on most prompts); the
    // job's count also includes the combining steps.
    const escalated = r.chunk_summaries.filter((c: any) => c.model === 'sim-large').length;
    assert.ok(escalated > 0 && escalated < done.chunks.total, `escalated chunks: ${escalated}`);
    assert.ok(done.escalations >= escalated);
    // Each chunk's workflow called sim-small once, and sim-large at most once.
    const calls = await callsByChunk(id);
    for (let n = 1; n <= done.chunks.total; n++) {
      const c = calls.get(`${id}-chunk-${n}`) ?? [];
      assert.equal(c.filter((x) => x.model === 'sim-small').length, 1, `chunk ${n}: ${JSON.stringify(c)}`);
      assert.ok(c.filter((x) => x.model === 'sim-large').length <= 1);
    }
    // The Temporal side: search attributes and labelled children.
    const desc = await stack.client.workflow.getHandle(id).describe();
    assert.equal(desc.typedSearchAttributes.get(SearchAttr.DocumentTask), 'summarize');
    const child = await stack.client.workflow.getHandle(`${id}-chunk-3`).describe();
    assert.equal(child.type, 'cascadeWorkflow');
    assert.equal(await child.staticSummary(), `chunk 3/${done.chunks.total} · summarize`);
    assert.equal(desc.typedSearchAttributes.get(SearchAttr.DocumentChunksDone), done.chunks.total);
  });
});

/** A real HTTP server that records webhook calls; the first call fails, so the retry is exercised. */
async function webhookReceiver(): Promise<{ url: string; calls: any[]; close(): Promise<void> }> {
  const calls: any[] = [];
  let seen = 0;
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen++;
      if (seen === 1) return res.writeHead(500).end();
      calls.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, calls, close: () => new Promise((r) => server.close(() => r())) };
}

describe('document tasks', () => {
  it('extract: a schema-invalid chunk answer is rejected and escalates; valid answers are merged', async () => {
    const schema = { type: 'object', properties: { metrics: { type: 'array', items: { type: 'number' } } }, required: ['metrics'] };
    const id = await start({ task: 'extract', text: documentText(5, 'extract'), schema }, { 'x-farm-output-tokens': '12' });
    const done = await waitFor(id, finished);
    assert.equal(done.status, 'completed');
    const r = done.result;
    assert.ok(r.items.length >= 4);
    // The farm's sim-small answers a json_schema request with schema-shaped JSON for some prompts
    // and with prose for the others (json_schema_share in config/farm.test.yaml); prose fails the
    // schema gate and escalates to sim-large, which always answers JSON.
    const escalated = [];
    for (const item of r.items) {
      const trace = (await stack.client.workflow.getHandle(`${id}-chunk-${item.chunk}`).result()) as any;
      const first = trace.cascade.attempts[0];
      assert.equal(first.model, 'sim-small');
      assert.equal(item.model, first.accepted ? 'sim-small' : 'sim-large', JSON.stringify(trace.cascade.attempts));
      if (!first.accepted) escalated.push(first.detail);
      assert.equal(item.valid, true, JSON.stringify(item));
      assert.ok(Array.isArray(item.data.metrics) && item.data.metrics.every((m: unknown) => typeof m === 'number'));
    }
    assert.ok(escalated.length > 0 && escalated.length < r.items.length, `escalated ${escalated.length} of ${r.items.length}`);
    // Rejected by the JSON gate: on the finished answer, or while streaming (early abort: prose
    // that opened like JSON — "[simulated] …" — can no longer parse).
    assert.ok(
      escalated.some((d) => /validators: not valid JSON|the JSON can no longer be valid/.test(d)),
      escalated.join(' | '),
    );
    assert.equal(done.escalations, escalated.length);
    assert.deepEqual(r.invalid_chunks, []);
    assert.deepEqual(r.merged, { metrics: r.items.flatMap((i: any) => i.data.metrics) }, 'array fields of the chunks are concatenated in chunk order');
  });

  it('classify: a label per chunk and overall; the webhook is called once the job is done (after one failed try)', async () => {
    const hook = await webhookReceiver();
    try {
      const labels = ['value', 'result', 'check', 'data'];
      const id = await start({ task: 'classify', text: documentText(6, 'classify'), labels, webhook_url: hook.url });
      const done = await waitFor(id, finished);
      assert.equal(done.status, 'completed');
      assert.equal(done.webhook, 'delivered');
      const r = done.result;
      assert.equal(r.items.length, done.chunks.total);
      for (const item of r.items) if (item.label !== null) assert.ok(labels.includes(item.label));
      assert.ok(labels.includes(r.overall));
      assert.equal(Object.values(r.counts as Record<string, number>).reduce((a, b) => a + b, 0) + r.unlabelled_chunks.length, r.items.length);
      assert.equal(hook.calls.length, 1);
      assert.equal(hook.calls[0].id, id);
      assert.equal(hook.calls[0].status, 'completed');
    } finally {
      await hook.close();
    }
  });

  it('qa: chunk answers, then final answers through the cascade', async () => {
    const questions = ['Which team improved metric 12?', 'How many findings are reported?'];
    const id = await start({ task: 'qa', text: documentText(6, 'qa'), questions }, { 'x-farm-output-tokens': '16' });
    const done = await waitFor(id, finished);
    assert.equal(done.status, 'completed');
    const r = done.result;
    assert.deepEqual(r.questions, questions);
    assert.match(r.answer, /^\[simulated\]/);
    assert.equal(r.chunk_answers.length, done.chunks.total);
    assert.ok(Array.isArray(r.cited_chunks));
  });

  it('uploads (multipart): Markdown and PDF are read as text; an unreadable PDF or a binary file is refused', async () => {
    const upload = async (name: string, type: string, data: BlobPart, task = 'summarize') => {
      const form = new FormData();
      form.set('task', task);
      form.set('model', 'cascade:simulated');
      form.set('file', new Blob([data], { type }), name);
      const res = await fetch(`${stack.apiUrl}/documents`, { method: 'POST', body: form, headers: { 'x-farm-output-tokens': '10' } });
      return { status: res.status, body: (await res.json()) as any };
    };
    const md = await upload('report.md', 'text/markdown', `# Report\n\n${documentText(3, 'upload')}`);
    assert.equal(md.status, 202, JSON.stringify(md.body));
    assert.equal((await waitFor(md.body.id, finished)).status, 'completed');
    assert.equal(
      await stack.client.workflow
        .getHandle(md.body.id)
        .describe()
        .then((d) => d.staticSummary()),
      'document · summarize · report.md · simulated',
    );

    const pdf = await upload('report.pdf', 'application/pdf', new Uint8Array(minimalPdf(['Quarterly report.', 'Revenue rose 12 percent in the north.'])));
    assert.equal(pdf.status, 202, JSON.stringify(pdf.body));
    const done = await waitFor(pdf.body.id, finished);
    assert.equal(done.status, 'completed');
    assert.equal(done.chunks.total, 1);
    const chunk = await stack.client.workflow.getHandle(`${pdf.body.id}-chunk-1`).fetchHistory();
    const payloads = await stack.codec!.decode(chunk.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? []);
    const input = JSON.stringify(payloads.map((p) => Buffer.from(p.data!).toString()));
    assert.match(input, /Quarterly report\.\\+nRevenue rose 12 percent in the north\./);

    const broken = await upload('broken.pdf', 'application/pdf', '%PDF-1.4 this is not a PDF');
    assert.equal(broken.status, 400);
    assert.equal(broken.body.error.code, 'unreadable_pdf');
    const png = await upload('image.png', 'image/png', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2]));
    assert.equal(png.status, 415);
    assert.equal(png.body.error.code, 'unsupported_file_type');
  });
});

describe('controlling a job', () => {
  const slow = { 'x-farm-fault': 'slow-first-token', 'x-farm-fault-delay-ms': '400', 'x-farm-output-tokens': '10' };

  it('cancel mid-job: running chunks stop, chunks already paid for stay in the result', async () => {
    const id = await start({ task: 'summarize', text: documentText(16, 'cancel') }, slow);
    await waitFor(id, (j) => j.chunks?.done >= 2, 30_000);
    const del = await fetch(`${stack.apiUrl}/documents/${id}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    const done = await waitFor(id, finished);
    assert.equal(done.status, 'cancelled');
    const r = done.result;
    assert.equal(r.summary, null);
    assert.ok(r.chunk_summaries.length >= 2 && r.chunk_summaries.length < done.chunks.total, `kept ${r.chunk_summaries.length} of ${done.chunks.total}`);
    assert.equal(r.chunk_summaries.length, done.chunks.done);
    assert.ok(done.cost_usd > 0);
    // No chunk past the cancellation was started.
    const started = [...(await callsByChunk(id)).keys()].length;
    assert.ok(started < done.chunks.total, `${started} chunks called a model`);
    const again = await fetch(`${stack.apiUrl}/documents/${id}`, { method: 'DELETE' });
    assert.equal(again.status, 200);
  });

  it('pause stops new chunks, resume continues to the end', async () => {
    const id = await start({ task: 'classify', labels: ['value', 'result'], text: documentText(10, 'pause') }, slow);
    await waitFor(id, (j) => j.chunks?.total > 0, 30_000);
    assert.equal((await fetch(`${stack.apiUrl}/documents/${id}/pause`, { method: 'POST' })).status, 202);
    const paused = await waitFor(id, (j) => j.status === 'paused', 10_000);
    await sleep(1500); // chunks running at the pause finish; no new ones start
    const still = await job(id);
    assert.equal(still.status, 'paused');
    assert.ok(still.chunks.done < still.chunks.total, `done ${still.chunks.done} of ${still.chunks.total} while paused`);
    await sleep(800);
    assert.equal((await job(id)).chunks.done, still.chunks.done);
    assert.ok(paused.chunks.done <= still.chunks.done);
    assert.equal((await fetch(`${stack.apiUrl}/documents/${id}/resume`, { method: 'POST' })).status, 202);
    const done = await waitFor(id, finished);
    assert.equal(done.status, 'completed');
    assert.equal(done.chunks.done, done.chunks.total);
  });

  it('kill -9 of the pool worker mid-job: the job completes and no completed model call is made again', async () => {
    const id = await start(
      { task: 'summarize', text: documentText(10, 'crash') },
      { ...slow, 'x-farm-fault': 'slow-first-token;pool=gpu-a', 'x-farm-fault-delay-ms': '600' },
    );
    const deadline = Date.now() + 20_000;
    while (!(await stack.farmLog()).some((a) => a.outcome === 'pending' && a.pool === 'gpu-a' && a.request_id?.startsWith(`${id}-chunk-`))) {
      assert.ok(Date.now() < deadline, 'no chunk call in flight');
      await sleep(25);
    }
    const completedBefore = await completedCalls(id);
    await sleep(200); // so the worker has reported those to Temporal (the pending call is still mid-generation)
    process.kill(stack.child('pool:gpu-a').pid!, 'SIGKILL');
    await sleep(300);
    await stack.startChild('pool:gpu-a');
    const done = await waitFor(id, finished, 90_000);
    assert.equal(done.status, 'completed', JSON.stringify(done).slice(0, 500));
    assert.equal(done.chunks.done, done.chunks.total);
    assert.match(done.result.summary, /^\[simulated\]/);
    const calls = await callsByChunk(id);
    assert.ok(
      [...calls.values()].flat().some((c) => c.outcome === 'client-closed'),
      'a call was cut by the kill',
    );
    await assertCompletedCallsNotRepeated(id, completedBefore, 4);
  });

  it('Idempotency-Key: a retried POST is the same job (also after it finished and continued as new), with each model call made once; another body → 409', async () => {
    const key = `doc-key-${Date.now()}`;
    const body = { model: 'cascade:simulated', task: 'summarize', text: documentText(12) };
    const headers = { 'idempotency-key': key, 'x-farm-output-tokens': '20' };
    const first = await post(body, headers);
    const firstJson = (await first.json()) as any;
    assert.equal(first.status, 202, JSON.stringify(firstJson));
    assert.match(firstJson.id, /^doc-idem-[0-9a-f]{40}$/);
    assert.equal(first.headers.get('idempotent-replayed'), null);
    const id = firstJson.id;

    // A retry while the job runs joins it.
    const again = await post(body, headers);
    const againJson = (await again.json()) as any;
    assert.equal(again.status, 202, JSON.stringify(againJson));
    assert.equal(againJson.id, id);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');

    const done = await waitFor(id, finished);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.ok(done.runs >= 2, `continued as new: runs ${done.runs}`);
    const callsBefore = (await completedCalls(id)).size;
    assert.ok(callsBefore >= done.chunks.total);

    // A retry after the job finished gets the finished job; nothing runs again.
    const late = await post(body, headers);
    const lateJson = (await late.json()) as any;
    assert.equal(late.status, 202, JSON.stringify(lateJson));
    assert.deepEqual([lateJson.id, lateJson.status], [id, 'completed']);
    assert.equal((await job(id)).result.summary, done.result.summary);
    await assertEachCallPaidOnce(id);
    assert.equal((await completedCalls(id)).size, callsBefore);

    // The same key with another document is refused; the job is untouched.
    const other = await post({ ...body, text: documentText(3) }, headers);
    const otherJson = (await other.json()) as any;
    assert.equal(other.status, 409, JSON.stringify(otherJson));
    assert.equal(otherJson.error.code, 'idempotency_key_reused');
    assert.equal((await job(id)).result.summary, done.result.summary);

    const empty = await post(body, { 'idempotency-key': '' });
    assert.equal(empty.status, 400);
    assert.equal(((await empty.json()) as any).error.code, 'invalid_idempotency_key');
  });
});

describe('failed chunks', () => {
  it('only the chunks that failed in an outage are rerun, after a wait, and the job completes', async () => {
    const farm = `${stack.farmUrl('cpu').replace(/\/v1$/, '')}/farm/faults`;
    const addFault = (rule: Record<string, string>) =>
      fetch(farm, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(rule) }).then((r) => assert.equal(r.status, 200));
    await addFault({ fault: 'slow-first-token' }); // so the outage below starts while chunks are still to do
    let waiting: any;
    try {
      const id = await start({ task: 'classify', labels: ['value', 'result'], text: documentText(10, 'outage') }, { 'x-farm-output-tokens': '10' });
      await waitFor(id, (j) => j.chunks?.done >= 2, 30_000);
      await fetch(farm, { method: 'DELETE' });
      await addFault({ fault: 'unavailable', model: 'sim-small' });
      await addFault({ fault: 'unavailable', model: 'sim-large' });
      // Each failing chunk takes a few seconds: retries on sim-small, escalation, retries on sim-large.
      waiting = await waitFor(id, (j) => /waiting to rerun/.test(j.phase ?? ''), 60_000);
      await fetch(farm, { method: 'DELETE' });
      assert.ok(waiting.chunks.failed > 0 && waiting.chunks.done >= 2, JSON.stringify(waiting.chunks));
      assert.equal(waiting.chunks.done + waiting.chunks.failed, waiting.chunks.total);

      const done = await waitFor(id, finished);
      assert.equal(done.status, 'completed');
      assert.equal(done.chunks.done, done.chunks.total);
      assert.deepEqual(done.result.failed_chunks, []);
      const reruns = [...(await callsByChunk(id)).keys()].filter((k) => k.endsWith('-rerun-1'));
      assert.equal(reruns.length, waiting.chunks.failed, 'each failed chunk rerun once, no other chunk');
    } finally {
      await fetch(farm, { method: 'DELETE' });
    }
  });
});

describe('bad input → clear 4xx', () => {
  const cases: [string, unknown, number, string][] = [
    ['empty document', { task: 'summarize', text: ' \n\t ' }, 400, 'empty_document'],
    ['no document', { task: 'summarize' }, 400, 'missing_document'],
    ['unknown task', { task: 'translate', text: 'hello' }, 400, 'unknown_task'],
    ['extract without schema', { task: 'extract', text: 'hello' }, 400, 'invalid_schema'],
    ['invalid schema', { task: 'extract', text: 'hello', schema: { type: 'no-such-type' } }, 400, 'invalid_schema'],
    ['classify with one label', { task: 'classify', text: 'hello', labels: ['a'] }, 400, 'invalid_value'],
    ['too large', { task: 'summarize', text: 'x'.repeat(200_001) }, 413, 'document_too_large'],
    ['far too large', { task: 'summarize', text: 'x'.repeat(400_000) }, 413, 'request_too_large'],
    ['webhook host not allowed', { task: 'summarize', text: 'hello', webhook_url: 'https://example.com/hook' }, 400, 'webhook_not_allowed'],
    [
      'webhook to the metadata address',
      { task: 'summarize', text: 'hello', webhook_url: 'http://169.254.169.254/latest/meta-data' },
      400,
      'webhook_not_allowed',
    ],
    ['webhook over ftp', { task: 'summarize', text: 'hello', webhook_url: 'ftp://127.0.0.1/x' }, 400, 'webhook_not_allowed'],
    ['unknown policy', { task: 'summarize', text: 'hello', model: 'cascade:nope' }, 404, 'model_not_found'],
  ];
  for (const [name, body, status, code] of cases) {
    it(name, async () => {
      const res = await post(body);
      const json = (await res.json()) as any;
      assert.equal(res.status, status, JSON.stringify(json));
      assert.equal(json.error.code, code);
      assert.equal(typeof json.error.message, 'string');
    });
  }
  it('unknown job id → 404', async () => {
    for (const id of ['doc-00000000-0000-0000-0000-000000000000', 'chat-123']) {
      const res = await fetch(`${stack.apiUrl}/documents/${id}`);
      assert.equal(res.status, 404);
      assert.equal(((await res.json()) as any).error.code, 'job_not_found');
    }
  });
});
