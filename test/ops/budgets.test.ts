/**
 * Per-key budgets and rate limits on the real stack, with two API processes (a child process and
 * this one) in front of one Temporal server and the farm: 50 concurrent requests against a key
 * whose budget pays for 10 never spend more than the budget, and the budget agrees with the
 * ledger; a rate limit answers 429 with Retry-After; a key's tier picks and limits its policies
 * and shows in the trace; a kill -9 of the API mid-request leaks no reservation; a cancelled
 * request's billed call counts in the ledger and the budget. BUDGET_TEST_ROUNDS=20 repeats the
 * concurrency round with a fresh key each time.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { WorkflowNotFoundError } from '@temporalio/client';
import { startStack, type Stack } from '../helpers/stack.js';
import { createApp } from '../../server/app.js';
import { generateKey, keyIdOf, readKeysFile, sha256Hex, writeKeysFile, type KeyEntry } from '../../common/api-keys.js';
import { modelsForPolicy, resolveTarget } from '../../config/load.js';
import { worstCaseCostUsd } from '../../workflows/budget.js';
import type { KeyLimits } from '../../config/schema.js';
import { idempotentWorkflowId } from '../../server/idempotency.js';
import { unitParams } from '../../workflows/document-tasks.js';
import { documentText } from '../documents/helpers.js';

const ROUNDS = Number(process.env.BUDGET_TEST_ROUNDS ?? 1);
const PROMPT = [{ role: 'user' as const, content: 'Write a short poem about budgets that hold under concurrency.' }];
const MAX_TOKENS = 40;

let stack: Stack;
let second: Server;
/** The child API process and this process's API. */
let apis: string[];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Adds a key to the stack's keys file; the API processes pick it up within a second. */
function addKey(name: string, tier: string, limits?: KeyLimits): { key: string; id: string } {
  const key = generateKey();
  const digest = sha256Hex(key);
  const path = stack.config.keysFilePath;
  const file = readKeysFile(path);
  const entry: KeyEntry = {
    id: keyIdOf(digest),
    sha256: digest,
    name,
    tier,
    created_at: new Date().toISOString(),
    revoked_at: null,
    ...(limits && { limits }),
  };
  file.keys.push(entry);
  writeKeysFile(path, file);
  return { key, id: entry.id };
}

async function chat(api: string, key: string, body: object, init: RequestInit & { headers?: Record<string, string> } = {}) {
  const res = await fetch(`${api}/chat/completions`, {
    ...init,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...init.headers },
    body: JSON.stringify({ model: 'sim-large', messages: PROMPT, max_tokens: MAX_TOKENS, ...body }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

const get = async (api: string, key: string, path: string) => (await fetch(`${api}${path}`, { headers: { authorization: `Bearer ${key}` } })).json() as any;

/** Polls `probe` until `done` holds (bounded: visibility and signals land within milliseconds to seconds). */
async function until<T>(probe: () => Promise<T>, done: (v: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await probe();
    if (done(v)) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await sleep(200);
  }
}

before(async () => {
  stack = await startStack({
    apiProcess: true,
    configure: (raw) => {
      raw.keys.tiers = {
        default: {},
        metered: {},
        limited: { rate_limit: { requests_per_minute: 3 } },
        narrow: { default_policy: 'simulated', allow: ['cascade:simulated', 'mixtral'] },
        tenant: { usage: 'own' },
      };
      // Small chunks, two at a time: a short document is many chunk cascades.
      Object.assign(raw.documents, { chunk_tokens: 64, overlap_tokens: 8, concurrency: 2 });
    },
  });
  second = createServer(createApp({ config: stack.config, client: stack.client, logger: pino({ level: 'silent' }) }));
  await new Promise<void>((resolve) => second.listen(0, '127.0.0.1', resolve));
  apis = [stack.apiUrl, `http://127.0.0.1:${(second.address() as AddressInfo).port}/v1`];
});
after(async () => {
  second?.closeAllConnections();
  second?.close();
  await stack?.close();
});

describe('key budgets and rate limits', () => {
  it(`50 concurrent requests over two API processes never spend more than a budget that pays for 10 (${ROUNDS} round(s))`, async (t) => {
    const target = resolveTarget(stack.config, 'sim-large')!;
    const worst = worstCaseCostUsd({
      params: { messages: PROMPT, max_tokens: MAX_TOKENS },
      policy: target.policy,
      models: modelsForPolicy(stack.config, target.policy),
      maxCostUsd: target.policy.max_cost_usd,
    });
    const budget = Number((10 * worst).toFixed(10));
    for (let round = 1; round <= ROUNDS; round++) {
      const { key, id } = addKey(`budget round ${round}`, 'metered', { budget_usd: { day: budget } });
      await sleep(1100); // the key store re-reads the file at most once a second
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => chat(apis[i % 2]!, key, {})));
      const answered = results.filter((r) => r.status === 200);
      const refused = results.filter((r) => r.status !== 200);
      for (const r of refused) {
        assert.equal(r.status, 402, JSON.stringify(r.body));
        assert.equal(r.body.error.code, 'budget_exceeded');
        assert.equal(r.body.error.type, 'insufficient_quota');
      }
      const spent = answered.reduce((a, r) => a + r.body.cascade.cost_usd, 0);
      assert.ok(answered.length >= 10, `round ${round}: only ${answered.length} answered; a budget for 10 worst cases admits at least 10`);
      assert.ok(spent <= budget + 1e-9, `round ${round}: spent $${spent} of a $${budget} budget (${answered.length} answered)`);
      // Every answered request is one model call at the farm, and nothing else was called for this key.
      const calls = (await stack.farmLog({ model: 'sim-large' })).filter((a) => answered.some((r) => a.request_id?.startsWith(r.body.cascade.workflow_id)));
      assert.equal(calls.length, answered.length);
      // The budget and the ledger agree, and nothing stays reserved.
      const ledger = await until(
        () => get(apis[1]!, key, `/usage?key=${id}`),
        (u) => u.totals.requests === answered.length,
        'the ledger',
      );
      assert.ok(Math.abs(ledger.totals.cost_usd - spent) < 1e-8, `ledger $${ledger.totals.cost_usd} vs responses $${spent}`);
      const status = await until(
        () => get(apis[0]!, key, '/budget'),
        (s) => s.usage?.reserved_usd === 0,
        'the reservations to settle',
      );
      assert.ok(Math.abs(status.usage.spent_today_usd - spent) < 1e-8, `budget says $${status.usage.spent_today_usd}, responses $${spent}`);
      t.diagnostic(`round ${round}: ${answered.length} answered, ${refused.length} refused, spent $${spent.toFixed(8)} of $${budget}`);
      const more = await chat(apis[round % 2]!, key, {});
      if (budget - spent < worst) assert.equal(more.status, 402);
    }
  });

  it('a rate limit answers 429 with Retry-After and rate_limit_exceeded, on either API process', async () => {
    const { key } = addKey('rate limited', 'limited');
    await sleep(1100);
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof chat>> | null = null;
    for (let i = 0; i < 4; i++) {
      const r = await chat(apis[i % 2]!, key, { model: 'sim-small', max_tokens: 5 });
      statuses.push(r.status);
      if (r.status === 429) refused = r;
    }
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal(refused!.body.error.code, 'rate_limit_exceeded');
    assert.equal(refused!.body.error.type, 'requests');
    const retryAfter = Number(refused!.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${refused!.headers.get('retry-after')}`);
  });

  it("a key's tier picks its default policy, limits its models, and shows in the trace", async () => {
    const { key, id } = addKey('narrow', 'narrow');
    await sleep(1100);
    const r = await chat(apis[0]!, key, { model: 'cascade', max_tokens: undefined });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.cascade.policy, 'simulated');
    assert.equal(r.body.cascade.tier, 'narrow');
    assert.equal(r.body.cascade.key_id, id);
    const one = await until(
      () => get(apis[1]!, key, `/cascade/${r.body.cascade.workflow_id}`),
      (x) => x.status === 'completed',
      'the ledger record',
    );
    assert.equal(one.cascade.tier, 'narrow');
    const denied = await chat(apis[1]!, key, { model: 'gpt-4' });
    assert.equal(denied.status, 403);
    assert.equal(denied.body.error.code, 'model_not_allowed');
    assert.equal(denied.body.error.param, 'model');
  });

  it("refusals for the caller's own reasons start no workflow: budget, and a prompt no step's window fits", async () => {
    const { key } = addKey('refusals', 'metered', { budget_usd: { day: 0.000001 } });
    await sleep(1100);
    const tooLong = await chat(apis[0]!, key, { model: 'sim-small', messages: [{ role: 'user', content: 'x'.repeat(40_000) }] });
    assert.equal(tooLong.status, 400);
    assert.equal(tooLong.body.error.code, 'context_length_exceeded');
    const poor = await chat(apis[1]!, key, {});
    assert.equal(poor.status, 402);
    for (const r of [tooLong, poor])
      await assert.rejects(stack.client.workflow.getHandle(r.headers.get('x-cascade-workflow-id')!).describe(), WorkflowNotFoundError);
  });

  it('kill -9 of the API process mid-request leaks no reservation: the cascade settles it', async () => {
    const { key, id: keyId } = addKey('crash', 'metered', { budget_usd: { day: 1 } });
    await sleep(1100);
    const idempotencyKey = `crash-${Date.now()}`;
    const pending = chat(
      apis[0]!,
      key,
      {},
      { headers: { 'idempotency-key': idempotencyKey, 'x-farm-fault': 'slow-first-token', 'x-farm-fault-delay-ms': '1000' } },
    ).catch((err: Error) => err);
    // Killed once its cascade is at the farm (killed between reserve and start, the reservation
    // waits for its expiry instead: deadline + 60 s, then Temporal says the cascade never started).
    const workflowId = idempotentWorkflowId('chat', idempotencyKey, keyId);
    await until(
      () => stack.farmLog({ model: 'sim-large' }),
      (log) => log.some((a) => a.request_id?.startsWith(workflowId)),
      'the call at the farm',
    );
    stack.child('api').kill('SIGKILL');
    assert.ok((await pending) instanceof Error, 'the client saw its connection die');
    const status = await until(
      () => get(apis[1]!, key, '/budget'),
      (s) => s.usage?.in_flight === 0,
      'the settle',
    );
    assert.equal(status.usage.reserved_usd, 0);
    const record = await until(
      () => get(apis[1]!, key, `/cascade/${workflowId}`),
      (x) => x.status === 'completed',
      'the ledger record',
    );
    assert.ok(record.cost_usd > 0);
    assert.equal(status.usage.spent_today_usd, record.cost_usd, 'the budget charged what the ledger holds');
  });

  it("a cancelled request's billed call counts in the ledger and the budget", async () => {
    const { key, id } = addKey('cancel', 'metered', { budget_usd: { day: 1 } });
    await sleep(1100);
    const abort = new AbortController();
    const pending = chat(apis[1]!, key, {}, { signal: abort.signal, headers: { 'x-farm-fault': 'slow-first-token', 'x-farm-fault-delay-ms': '1200' } }).catch(
      (err: Error) => err,
    );
    await until(
      () => get(apis[1]!, key, '/budget'),
      (s) => s.usage?.in_flight === 1,
      'the reservation',
    );
    await sleep(400); // the call is at the farm now
    abort.abort();
    await pending;
    const usage = await until(
      () => get(apis[1]!, key, `/usage?key=${id}`),
      (u) => u.totals.requests === 1,
      'the cancelled request in the ledger',
    );
    assert.equal(usage.totals.failed, 1);
    assert.ok(usage.totals.cost_usd > 0, 'the cut-off call is charged');
    const status = await until(
      () => get(apis[1]!, key, '/budget'),
      (s) => s.usage?.in_flight === 0,
      'the settle',
    );
    assert.ok(
      Math.abs(status.usage.spent_today_usd - usage.totals.cost_usd) < 1e-9,
      `budget $${status.usage.spent_today_usd}, ledger $${usage.totals.cost_usd}`,
    );
    assert.ok(
      (await stack.farmLog({ model: 'sim-large' })).some((a) => a.fault === 'slow-first-token'),
      'the call reached the farm',
    );
  });

  it("a document job's chunks reserve in the key's budget: the job pauses itself when it runs out, and resumes to the end once raised", async (t) => {
    const labels = ['value', 'result'];
    const text = documentText(30, 'budgeted');
    // About three chunks' worst case (each chunk: every step of the policy, max_tokens long).
    const target = resolveTarget(stack.config, 'cascade:simulated')!;
    const chunk = documentText(1, 'budgeted');
    const worst = worstCaseCostUsd({
      params: unitParams('classify', { labels }, { kind: 'map' }, 0, 30, chunk),
      policy: target.policy,
      models: modelsForPolicy(stack.config, target.policy),
    });
    const budget = Number((3 * worst).toFixed(10));
    const { key, id: keyId } = addKey('documents', 'metered', { budget_usd: { day: budget } });
    await sleep(1100);
    const api = apis[1]!;
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${key}` };
    const submitted = await fetch(`${api}/documents`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ model: 'cascade:simulated', task: 'classify', labels, text }),
    });
    assert.equal(submitted.status, 202, await submitted.clone().text());
    const { id } = (await submitted.json()) as { id: string };
    const job = () => get(api, key, `/documents/${id}`);

    const paused = await until(job, (j) => j.status === 'paused', 'the job to pause itself');
    assert.match(paused.paused_reason, /^budget_exceeded: This key's daily budget/);
    const now = new Date();
    assert.equal(
      paused.resumes_at,
      new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)).toISOString(),
      'resumes when the UTC day begins',
    );
    const settled = await until(
      () => get(api, key, '/budget'),
      (b) => b.usage?.in_flight === 0,
      'the running chunks to settle',
    );
    const stopped = await until(job, (j) => Math.abs(j.cost_usd - settled.usage.spent_today_usd) < 1e-9, 'the job to record its chunks');
    assert.ok(stopped.chunks.done >= 1 && stopped.chunks.done < stopped.chunks.total, `${stopped.chunks.done} of ${stopped.chunks.total} chunks`);
    assert.ok(settled.usage.spent_today_usd <= budget + 1e-12, `spent $${settled.usage.spent_today_usd} of $${budget}`);
    t.diagnostic(`paused after ${stopped.chunks.done} of ${stopped.chunks.total} chunks, $${settled.usage.spent_today_usd} spent of $${budget}`);
    // Only the admitted chunks reached the farm.
    const called = new Set((await stack.farmLog()).filter((a) => a.request_id?.startsWith(`${id}-chunk-`)).map((a) => a.request_id!.split('/')[0]));
    assert.equal(called.size, stopped.chunks.done + stopped.chunks.failed);

    // Resumed under the same budget, it pauses again at once; with the budget raised, it finishes.
    assert.equal((await fetch(`${api}/documents/${id}/resume`, { method: 'POST', headers })).status, 202);
    await until(job, (j) => j.status === 'paused' && j.chunks.done === stopped.chunks.done, 'the job to pause again');
    const file = readKeysFile(stack.config.keysFilePath);
    file.keys.find((k) => k.id === keyId)!.limits = { budget_usd: { day: 1000 } };
    writeKeysFile(stack.config.keysFilePath, file);
    await sleep(1100);
    assert.equal((await fetch(`${api}/documents/${id}/resume`, { method: 'POST', headers })).status, 202);
    const done = await until(job, (j) => j.status === 'completed', 'the job to complete');
    assert.equal(done.chunks.done, done.chunks.total);
    assert.equal(done.paused_reason, undefined);
    // Budget, job and ledger agree; every chunk is the key's in the ledger.
    const status = await until(
      () => get(api, key, '/budget'),
      (b) => b.usage?.in_flight === 0 && Math.abs(b.usage.spent_today_usd - done.cost_usd) < 1e-9,
      'the budget to hold the job cost',
    );
    assert.equal(status.usage.reserved_usd, 0);
    const usage = await until(
      () => get(api, key, `/usage?key=${keyId}`),
      (u) => u.totals.requests === done.chunks.total,
      'the ledger',
    );
    assert.ok(Math.abs(usage.totals.cost_usd - done.cost_usd) < 1e-9, `ledger $${usage.totals.cost_usd}, job $${done.cost_usd}`);
  });

  it("each key's Idempotency-Keys and document jobs are its own, and with usage: own its ledger too", async () => {
    const a = addKey('tenant a', 'tenant');
    const b = addKey('tenant b', 'tenant');
    const operator = addKey('operator', 'default');
    await sleep(1100);
    const api = apis[1]!;
    // Both count from 1: different bodies under the same Idempotency-Key, no 409, two workflows.
    const headers = { 'idempotency-key': '1' };
    const fromA = await chat(api, a.key, { messages: [{ role: 'user', content: 'Tenant A asks about apples.' }] }, { headers });
    const fromB = await chat(api, b.key, { messages: [{ role: 'user', content: 'Tenant B asks about pears.' }] }, { headers });
    assert.equal(fromA.status, 200, JSON.stringify(fromA.body));
    assert.equal(fromB.status, 200, JSON.stringify(fromB.body));
    assert.notEqual(fromA.headers.get('x-cascade-workflow-id'), fromB.headers.get('x-cascade-workflow-id'));
    const againA = await chat(api, a.key, { messages: [{ role: 'user', content: 'Tenant A asks about apples.' }] }, { headers });
    assert.equal(againA.headers.get('x-cascade-workflow-id'), fromA.headers.get('x-cascade-workflow-id'), "A's retry joins A's request");

    // The ledger: A sees its own requests only; the operator's tier (usage: all) sees every key's.
    const wfB = fromB.headers.get('x-cascade-workflow-id')!;
    const wfA = fromA.headers.get('x-cascade-workflow-id')!;
    const usageA = await until(
      () => get(api, a.key, '/usage'),
      (u) => u.totals.requests === 1,
      "A's request in A's ledger",
    );
    assert.deepEqual(Object.keys(usageA.by_key), [a.id]);
    const denied = await fetch(`${api}/usage?key=${b.id}`, { headers: { authorization: `Bearer ${a.key}` } });
    assert.equal(denied.status, 403);
    assert.equal(((await denied.json()) as any).error.code, 'usage_not_allowed');
    assert.equal((await get(api, a.key, `/cascade/${wfA}`)).workflow_id, wfA);
    assert.equal((await get(api, a.key, `/cascade/${wfB}`)).error.code, 'request_not_found');
    const label = await fetch(`${api}/cascade/${wfB}/feedback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${a.key}` },
      body: JSON.stringify({ label: 'bad' }),
    });
    assert.equal(label.status, 404, "A cannot label B's request");
    assert.equal((await get(api, operator.key, `/cascade/${wfB}`)).key_id, b.id);
    const all = await get(api, operator.key, `/usage?key=${b.id}`);
    assert.equal(all.totals.requests, 1);

    const submitted = await fetch(`${api}/documents`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${a.key}` },
      body: JSON.stringify({ model: 'cascade:simulated', task: 'classify', labels: ['value', 'result'], text: documentText(3, 'tenant') }),
    });
    assert.equal(submitted.status, 202);
    const { id } = (await submitted.json()) as { id: string };
    const as = (key: string, path = '', method = 'GET') => fetch(`${api}/documents/${id}${path}`, { method, headers: { authorization: `Bearer ${key}` } });
    for (const [path, method] of [
      ['', 'GET'],
      ['/pause', 'POST'],
      ['', 'DELETE'],
    ] as const) {
      const other = await as(b.key, path, method);
      assert.equal(other.status, 404, `${method} ${path} by another key`);
      assert.equal(((await other.json()) as any).error.code, 'job_not_found');
    }
    const done = await until(
      async () => (await as(a.key)).json() as Promise<any>,
      (j) => j.status === 'completed',
      "A's job",
    );
    assert.equal(done.chunks.done, done.chunks.total);
  });
});
