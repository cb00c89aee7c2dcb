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

let stack: Stack;
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
    },
  });
});
after(async () => {
  await stack?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Paragraphs of distinct sentences: `paragraphs` × ~60 tokens. */
export function documentText(paragraphs: number, seed = 'doc'): string {
  return Array.from({ length: paragraphs }, (_, p) =>
    Array.from({ length: 4 }, (_, s) => `In ${seed} section ${p + 1}, finding ${s + 1} reports that metric ${(p * 7 + s * 3) % 97} rose for team ${String.fromCharCode(65 + ((p + s) % 26))}.`).join(' '),
  ).join('\n\n');
}

async function post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${stack.apiUrl}/documents`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

async function start(body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<string> {
  const res = await post({ model: 'cascade:simulated', ...body }, headers);
  const json = (await res.json()) as any;
  assert.equal(res.status, 202, JSON.stringify(json));
  assert.match(json.id, /^doc-/);
  return json.id;
}

const job = async (id: string) => (await (await fetch(`${stack.apiUrl}/documents/${id}`)).json()) as any;

async function waitFor(id: string, done: (j: any) => boolean, timeoutMs = 60_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const j = await job(id);
    if (done(j)) return j;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${j.status}: ${JSON.stringify(j).slice(0, 400)}`);
    await sleep(100);
  }
}
const finished = (j: any) => j.status === 'completed' || j.status === 'cancelled' || j.status === 'failed';

/** Model calls the farm saw for a job's chunk workflows, by chunk workflow id. */
async function callsByChunk(id: string): Promise<Map<string, { model: string | null; outcome: string }[]>> {
  const byChunk = new Map<string, { model: string | null; outcome: string }[]>();
  for (const a of await stack.farmLog()) {
    if (!a.request_id?.startsWith(`${id}-`)) continue;
    const wf = a.request_id.split('/')[0]!;
    byChunk.set(wf, [...(byChunk.get(wf) ?? []), { model: a.model, outcome: a.outcome }]);
  }
  return byChunk;
}

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
