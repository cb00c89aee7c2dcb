/**
 * Chaos: kill -9 of a pool worker, the process running the workflow and the API mid-request, in
 * every layout the config offers: dispatch `task-queue` (pool workers) or `local` (the process
 * running the workflow calls the endpoints itself), and the router worker embedded in the API
 * process (`temporal.embedded_router`, workflows started eagerly there) or only in router
 * processes. Every process here is a real child process; the farm's attempt log shows which model
 * calls were really made.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Attempt } from '../../farm/index.js';
import { GPT4, MIXTRAL, startStack, type Stack } from '../helpers/stack.js';

const rows = readFileSync(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .slice(0, 5)
  .map((l) => JSON.parse(l));
const prompt = rows[0].prompt as string;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the farm shows a call in flight that matches, so a kill lands mid-generation. */
async function waitForPending(stack: Stack, match: (a: Attempt) => boolean): Promise<Attempt> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const found = (await stack.farmLog()).find((a) => a.outcome === 'pending' && match(a));
    if (found) return found;
    await sleep(25);
  }
  throw new Error('no matching call in flight at the farm');
}

function post(stack: Stack, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  return fetch(`${stack.apiUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ messages: [{ role: 'user', content: prompt }], ...body }),
  });
}

const callsFor = async (stack: Stack, workflowId: string) =>
  (await stack.farmLog()).filter((a) => a.request_id?.startsWith(`${workflowId}/`)).sort((a, b) => a.t_ms - b.t_ms);

const LAYOUTS = [
  { dispatch: 'task-queue', embedded: true },
  { dispatch: 'local', embedded: true },
  { dispatch: 'task-queue', embedded: false },
  { dispatch: 'local', embedded: false },
] as const;

for (const { dispatch, embedded } of LAYOUTS) {
  // The process whose router worker runs the request's workflow: the API that started it eagerly,
  // or a router process.
  const runner = embedded ? 'api' : 'router';
  describe(`kill -9 mid-request (dispatch: ${dispatch}, router ${embedded ? 'embedded in the API' : 'in router processes'})`, () => {
    let stack: Stack;
    before(async () => {
      stack = await startStack({
        poolProcesses: dispatch === 'local' ? [] : ['cpu'],
        routerProcess: true,
        apiProcess: true,
        configure: (raw) => {
          raw.policies.default.deadline_ms = 60_000;
          raw.breaker.failure_threshold = 1000;
          raw.temporal.embedded_router = embedded;
          // The calls killed mid-flight are made slow with a 1.2 s first token: the first-token
          // budget (shared between an attempt and its failover) must leave room for it.
          for (const model of [MIXTRAL, GPT4]) raw.models[model].timeouts.first_token_ms = 5000;
          if (dispatch === 'local') for (const pool of Object.values(raw.pools) as { dispatch?: string }[]) pool.dispatch = 'local';
        },
      });
    });
    after(async () => {
      await stack?.close();
    });

    it(
      'a pool worker dies during a slow generation: another pool finishes the request',
      { skip: dispatch === 'local' && 'no pool worker: local calls die with the router (next test)' },
      async () => {
        const pending = post(stack, { model: 'mixtral' }, { 'x-farm-fault': 'slow-first-token;pool=cpu', 'x-farm-fault-delay-ms': '1200' });
        const inFlight = await waitForPending(stack, (a) => a.pool === 'cpu');
        const worker = stack.child('pool:cpu');
        process.kill(worker.pid!, 'SIGKILL');
        const res = await pending;
        assert.equal(res.status, 200);
        const body = (await res.json()) as any;
        assert.equal(body.choices[0].message.content, rows[0].models[MIXTRAL].response);
        assert.equal(body.cascade.attempts.at(-1).pool, 'gpu-a');
        const calls = await callsFor(stack, body.cascade.workflow_id);
        assert.equal(calls[0]!.request_id, inFlight.request_id);
        assert.deepEqual(
          calls.map((a) => [a.pool, a.outcome]),
          [
            ['cpu', 'client-closed'],
            ['gpu-a', 'ok'],
          ],
        );
        await stack.startChild('pool:cpu');
      },
    );

    it(`the ${runner} process running the workflow dies after a model call completed: the workflow resumes elsewhere without calling that model again`, async () => {
      // JSON is asked, so Mixtral's prose answer is rejected and GPT-4 (slow here) is called next.
      const key = `runner-${dispatch}-${embedded}-${Date.now()}`;
      const ask = () =>
        post(
          stack,
          { model: 'cascade', response_format: { type: 'json_object' } },
          { 'idempotency-key': key, 'x-farm-fault': 'slow-first-token;pool=api', 'x-farm-fault-delay-ms': '1200' },
        );
      const pending = ask();
      await waitForPending(stack, (a) => a.model === GPT4);
      process.kill(stack.child(runner).pid!, 'SIGKILL');
      // The API held the caller's connection too: the caller sees it drop and retries with its
      // Idempotency-Key once an API process is back.
      if (runner === 'api') await assert.rejects(pending);
      await stack.startChild(runner);
      const res = runner === 'api' ? await ask() : await pending;
      assert.equal(res.status, 200);
      const body = (await res.json()) as any;
      assert.equal(body.model, GPT4, JSON.stringify(body.cascade));
      assert.equal(body.cascade.final_step, 2);
      const calls = await callsFor(stack, body.cascade.workflow_id);
      assert.deepEqual(
        calls.map((a) => [a.model, a.outcome]),
        dispatch === 'local'
          ? [
              [MIXTRAL, 'ok'], // finished before the crash: recorded, never asked again
              [GPT4, 'client-closed'], // in flight in the process that died
              [GPT4, 'ok'],
            ]
          : [
              [MIXTRAL, 'ok'],
              [GPT4, 'ok'],
            ],
        'a finished model call is never made again',
      );
    });

    it('the API dies mid-request: the same Idempotency-Key returns the same answer without another model call', async () => {
      const key = `chaos-${Date.now()}`;
      const workflowId = `chat-idem-${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
      const first = post(stack, { model: 'cascade' }, { 'idempotency-key': key, 'x-farm-fault': 'slow-first-token;pool=cpu', 'x-farm-fault-delay-ms': '1200' });
      await waitForPending(stack, (a) => a.request_id?.startsWith(`${workflowId}/`) ?? false);
      process.kill(stack.child('api').pid!, 'SIGKILL');
      await assert.rejects(first); // the caller sees its connection drop
      await stack.startChild('api');
      // With local dispatch in the API's own router worker, the call in flight died with it and is
      // made again once; in every other layout it ran elsewhere and finished.
      const expected = dispatch === 'local' && embedded ? ['client-closed', 'ok'] : ['ok'];

      const retried = await post(stack, { model: 'cascade' }, { 'idempotency-key': key });
      assert.equal(retried.status, 200);
      const body = (await retried.json()) as any;
      assert.equal(body.cascade.workflow_id, workflowId);
      assert.equal(body.choices[0].message.content, rows[0].models[MIXTRAL].response);
      const again = (await (await post(stack, { model: 'cascade' }, { 'idempotency-key': key })).json()) as any;
      assert.equal(again.choices[0].message.content, body.choices[0].message.content);
      assert.deepEqual(
        (await callsFor(stack, workflowId)).map((a) => a.outcome),
        expected,
        'no new model call for the key, however often it is asked',
      );

      const conflict = await post(stack, { model: 'cascade', temperature: 0.5 }, { 'idempotency-key': key });
      assert.equal(conflict.status, 409);
      assert.equal(((await conflict.json()) as any).error.code, 'idempotency_key_reused');
    });
  });
}
