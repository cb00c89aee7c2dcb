/**
 * Upstream faults, one per farm fault, observed end to end: through the API, the workflow and
 * the pool activities to the farm, whose attempt log shows what the router really sent.
 * The circuit breaker is set out of reach here (its own test file covers it), so every test
 * starts from the configured pool order.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Attempt } from '../../farm/index.js';
import { GPT4, MIXTRAL, startStack, type Stack } from '../helpers/stack.js';

const rows = readFileSync(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .slice(0, 5)
  .map((l) => JSON.parse(l));
const prompt = rows[0].prompt as string;
const mixtralAnswer = rows[0].models[MIXTRAL].response as string;
const gpt4Answer = rows[0].models[GPT4].response as string;

let stack: Stack;
before(async () => {
  stack = await startStack({
    configure: (raw, farmUrl) => {
      raw.breaker.failure_threshold = 1000;
      // GPT-4's last resort is a stand-in served under another upstream name (the farm's sim-large).
      raw.models[GPT4].fallbacks = [{ id: 'gpt-4-standin', pool: 'api', base_url: farmUrl('api'), upstream_model: 'sim-large' }];
    },
  });
});
after(async () => {
  await stack?.close();
});

interface Result {
  status: number;
  body: any;
  workflowId: string;
  attempts: Attempt[];
  ms: number;
}

/** Posts one chat request with farm fault headers; returns the body and the farm's attempts for it. */
async function chat(fault: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<Result> {
  const started = Date.now();
  const res = await fetch(`${stack.apiUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-farm-fault': fault, ...headers },
    body: JSON.stringify({ model: 'mixtral', messages: [{ role: 'user', content: prompt }], ...body }),
  });
  const ms = Date.now() - started;
  const workflowId = res.headers.get('x-cascade-workflow-id') ?? '';
  const json = body.stream ? await res.text() : await res.json();
  const attempts = (await stack.farmLog()).filter((a) => a.request_id?.startsWith(`${workflowId}/`)).sort((a, b) => a.t_ms - b.t_ms);
  return { status: res.status, body: json, workflowId, attempts, ms };
}

/** The JSON events of an SSE body (each event's `data:` line; `id:` lines and [DONE] left out). */
const sseEvents = (body: string): any[] =>
  body
    .split('\n\n')
    .map((e) =>
      e
        .split('\n')
        .find((l) => l.startsWith('data: '))
        ?.slice(6),
    )
    .filter((d): d is string => !!d && d !== '[DONE]')
    .map((d) => JSON.parse(d));
const sseContent = (body: string) =>
  sseEvents(body)
    .map((e) => e.choices?.[0]?.delta?.content ?? '')
    .join('');
const lastSseChunkWithTrace = (body: string) =>
  sseEvents(body)
    .filter((e) => e.cascade)
    .at(-1).cascade;

const gaps = (attempts: Attempt[]) => attempts.slice(1).map((a, i) => a.t_ms - attempts[i]!.t_ms);

describe('retried on the same deployment', () => {
  it('error-once: a 500 is retried with backoff and the retry answers', async () => {
    const r = await chat('error-once;pool=cpu');
    assert.equal(r.status, 200);
    assert.equal(r.body.choices[0].message.content, mixtralAnswer);
    assert.deepEqual(
      r.attempts.map((a) => [a.pool, a.outcome]),
      [
        ['cpu', '500'],
        ['cpu', 'ok'],
      ],
    );
    assert.ok(gaps(r.attempts)[0]! >= 100, `backoff ${gaps(r.attempts)[0]} ms`);
    assert.equal(r.body.cascade.attempts[0].retries, 1);
  });

  it('reset: a connection reset before any byte is retried', async () => {
    const r = await chat('reset;pool=cpu');
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.attempts.map((a) => [a.pool, a.outcome]),
      [
        ['cpu', 'reset'],
        ['cpu', 'ok'],
      ],
    );
  });

  it('rate-limit-retry-after: the retry waits at least as long as Retry-After says', async () => {
    const r = await chat('rate-limit-retry-after;pool=cpu');
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.attempts.map((a) => [a.pool, a.outcome]),
      [
        ['cpu', '429'],
        ['cpu', 'ok'],
      ],
    );
    assert.ok(gaps(r.attempts)[0]! >= 2000, `retried after ${gaps(r.attempts)[0]} ms, Retry-After was 2 s`);
  });

  it('no-done: a complete stream without [DONE] is finalised when the body ends', async () => {
    const r = await chat('no-done');
    assert.equal(r.status, 200);
    assert.equal(r.body.choices[0].message.content, mixtralAnswer);
    assert.deepEqual(
      r.attempts.map((a) => [a.pool, a.outcome]),
      [['cpu', 'no-done']],
    );
    assert.ok(r.ms < 1000, `took ${r.ms} ms: the body's end must finalise the answer`);
  });
});

describe('failed over to the next deployment', () => {
  it('rate-limit: persistent 429s are retried a bounded number of times with backoff, then fail over', async () => {
    const r = await chat('rate-limit;pool=cpu');
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.attempts.map((a) => [a.pool, a.outcome]),
      [
        ['cpu', '429'],
        ['cpu', '429'],
        ['cpu', '429'],
        ['gpu-a', 'ok'],
      ],
    );
    const [g1, g2] = gaps(r.attempts);
    assert.ok(g1! >= 100 && g2! >= 200, `backoff gaps ${g1}, ${g2} ms`);
    assert.equal(r.body.cascade.attempts.at(-1).pool, 'gpu-a');
    assert.equal(r.body.cascade.attempts[0].error, 'rate_limited');
  });

  it('unavailable: persistent 503s fail over within the retry bound', async () => {
    const r = await chat('unavailable;pool=cpu');
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.attempts.map((a) => a.outcome),
      ['503', '503', '503', 'ok'],
    );
    assert.equal(r.attempts.at(-1)!.pool, 'gpu-a');
  });

  for (const stream of [false, true]) {
    it(`no-response${stream ? ', streaming' : ''}: the first-token limit is shared with the failover, so the next deployment is asked inside it`, async () => {
      const r = await chat('no-response;pool=cpu', { stream });
      assert.equal(r.status, 200);
      const trace = stream ? lastSseChunkWithTrace(r.body) : r.body.cascade;
      assert.equal(stream ? sseContent(r.body) : r.body.choices[0].message.content, mixtralAnswer);
      assert.equal(trace.attempts[0].error, 'upstream_timeout');
      // 1.5 s is the model's first-token limit; the primary got half of it, gpu-a the rest.
      assert.match(trace.attempts[0].detail, /no response within 750 ms/);
      assert.equal(trace.attempts.at(-1).pool, 'gpu-a');
      // The silent deployment is not asked again and again, and the failover reached the farm
      // before the whole limit had passed since the first attempt (same clock: the farm's).
      assert.deepEqual(
        r.attempts.map((a) => [a.pool, a.outcome]),
        [
          ['cpu', 'no-response'],
          ['gpu-a', 'ok'],
        ],
      );
      const failoverAfter = r.attempts[1]!.t_ms - r.attempts[0]!.t_ms;
      assert.ok(failoverAfter < 1500, `the failover was asked ${failoverAfter} ms after the first attempt (limit 1.5 s)`);
      assert.ok(r.ms < 10_000, `took ${r.ms} ms (hang bound)`);
    });
  }

  for (const [fault, error] of [
    ['stream-cut', 'stream_incomplete'],
    ['malformed-chunk', 'stream_malformed'],
  ] as const) {
    it(`${fault}: a broken stream is never an answer; another deployment answers in full`, async () => {
      const r = await chat(`${fault};pool=cpu`);
      assert.equal(r.status, 200);
      assert.equal(r.body.choices[0].message.content, mixtralAnswer);
      assert.equal(r.body.cascade.attempts[0].error, error);
      assert.equal(r.body.cascade.attempts[0].cost_usd, 0, 'a failed attempt is not billed');
      assert.deepEqual(
        r.attempts.map((a) => [a.pool, a.outcome]),
        [
          ['cpu', fault],
          ['gpu-a', 'ok'],
        ],
      );
    });
  }

  it('stream-stall: a stream that goes silent past the idle limit fails over', async () => {
    const r = await chat('stream-stall;pool=cpu', {}, { 'x-farm-fault-delay-ms': '5000' });
    assert.equal(r.status, 200);
    assert.equal(r.body.choices[0].message.content, mixtralAnswer);
    assert.equal(r.body.cascade.attempts[0].error, 'stream_stalled');
    assert.equal(r.attempts.at(-1)!.pool, 'gpu-a');
    assert.ok(r.ms < 4000, `took ${r.ms} ms (idle limit 1 s; the stall lasts 5 s)`);
  });
});

describe('errors that concern the request', () => {
  it("context-length on one pool: not retried there; the same model's other deployment answers", async () => {
    const r = await chat('context-length;pool=cpu');
    assert.equal(r.status, 200);
    assert.equal(r.body.model, MIXTRAL);
    assert.equal(r.body.choices[0].message.content, mixtralAnswer);
    assert.deepEqual(
      r.attempts.map((a) => [a.pool, a.outcome]),
      [
        ['cpu', 'context_length_exceeded'],
        ['gpu-a', 'ok'],
      ],
    );
    assert.equal(r.body.cascade.attempts[0].error, 'context_length_exceeded');
  });

  it('context-length on every deployment of a model: the cascade jumps to a step whose window fits', async () => {
    const r = await chat(`context-length;model=${MIXTRAL}`, { model: 'cascade' });
    assert.equal(r.status, 200);
    assert.equal(r.body.model, GPT4);
    assert.equal(r.body.choices[0].message.content, gpt4Answer);
    assert.deepEqual(
      r.attempts.map((a) => [a.model, a.pool, a.outcome]),
      [
        [MIXTRAL, 'cpu', 'context_length_exceeded'],
        [MIXTRAL, 'gpu-a', 'context_length_exceeded'],
        [GPT4, 'api', 'ok'],
      ],
    );
    assert.equal(r.body.cascade.attempts[0].error, 'context_length_exceeded');
  });

  it('content-filter: not retried, not escalated, and the reason reaches the caller', async () => {
    const r = await chat('content-filter', { model: 'cascade' });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'content_policy_violation');
    assert.equal(r.body.error.type, 'invalid_request_error');
    assert.match(r.body.error.message, /content/i);
    assert.equal(r.attempts.length, 1);
    assert.equal(r.body.error.cascade.attempts.length, 1);
  });

  it('a prompt longer than every context window is refused without calling any model', async () => {
    const r = await chat('', { model: 'cascade', max_tokens: 200_000 });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'context_length_exceeded');
    assert.equal(r.attempts.length, 0);
  });
});

describe('the model that answered', () => {
  it('a fallback deployment serving another upstream model: the response names it, the trace keeps the registry name', async () => {
    const r = await chat(`unavailable;model=${GPT4}`, { model: 'gpt-4' });
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.attempts.map((a) => [a.model, a.outcome]),
      [
        [GPT4, '503'],
        [GPT4, '503'],
        [GPT4, '503'],
        ['sim-large', 'ok'],
      ],
    );
    assert.equal(r.body.model, 'sim-large');
    assert.equal(r.body.cascade.registry_model, GPT4);
    assert.deepEqual(
      r.body.cascade.attempts.map((a: any) => [a.model, a.deployment, a.upstream_model ?? null]),
      [
        [GPT4, `${GPT4}@api`, null],
        [GPT4, 'gpt-4-standin', 'sim-large'],
      ],
    );
  });
});

describe('deadline and budget apply across steps', () => {
  it('a deadline no step can meet ends with 504 and the trace, before any model call', async () => {
    // The simulated models have not been called in this file, so their configured latency
    // (p50 100 ms) is what the workflow knows; a measured one could be faster than the deadline.
    const r = await chat('', { model: 'cascade:simulated', cascade: { deadline_ms: 50 } });
    assert.equal(r.status, 504);
    assert.equal(r.body.error.code, 'deadline_exceeded');
    // Each step is either skipped up front (its typical latency does not fit) or stopped before its call.
    const errors = r.body.error.cascade.attempts.map((a: any) => a.error);
    assert.equal(errors.length, 2);
    for (const e of errors) assert.ok(['skipped:deadline', 'deadline_exceeded'].includes(e), e);
    assert.equal(r.attempts.length, 0);
  });

  it('a budget no step fits ends with 402 budget_exceeded', async () => {
    const r = await chat('', { model: 'cascade', cascade: { max_cost_usd: 0.000001 } });
    assert.equal(r.status, 402);
    assert.equal(r.body.error.code, 'budget_exceeded');
    assert.equal(r.attempts.length, 0);
  });

  it('a budget that pays for the cheap step only returns its rejected answer, flagged as degraded', async () => {
    const r = await chat('', { model: 'cascade', response_format: { type: 'json_object' }, cascade: { max_cost_usd: 0.001 } });
    assert.equal(r.status, 200);
    assert.equal(r.body.model, MIXTRAL);
    assert.equal(r.body.cascade.degraded, true);
    assert.deepEqual(
      r.body.cascade.attempts.map((a: any) => a.error),
      [null, 'skipped:budget'],
    );
    assert.ok(r.body.cascade.cost_usd <= 0.001);
    assert.deepEqual(
      r.attempts.map((a) => a.model),
      [MIXTRAL],
    );
  });
});

describe('a caller that goes away', () => {
  it('without an Idempotency-Key, disconnecting cancels the workflow and no further model is called', async () => {
    const abort = new AbortController();
    const pending = fetch(`${stack.apiUrl}/chat/completions`, {
      method: 'POST',
      signal: abort.signal,
      headers: { 'content-type': 'application/json', 'x-farm-fault': 'slow-first-token;pool=cpu', 'x-farm-fault-delay-ms': '1200' },
      body: JSON.stringify({ model: 'cascade', response_format: { type: 'json_object' }, messages: [{ role: 'user', content: prompt }] }),
    });
    let inFlight: Attempt | undefined;
    for (let i = 0; i < 200 && !inFlight; i++) {
      inFlight = (await stack.farmLog({ pool: 'cpu' })).find((a) => a.outcome === 'pending');
      if (!inFlight) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(inFlight, 'the cheap call is in flight');
    abort.abort();
    await assert.rejects(pending);
    const workflowId = inFlight.request_id!.split('/')[0]!;
    const handle = stack.client.workflow.getHandle(workflowId);
    let status = '';
    for (let i = 0; i < 100 && status !== 'CANCELLED'; i++) {
      status = (await handle.describe()).status.name;
      if (status !== 'CANCELLED') await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 'CANCELLED');
    await new Promise((r) => setTimeout(r, 1500)); // past the slow first token: would GPT-4 be called next?
    const calls = (await stack.farmLog()).filter((a) => a.request_id?.startsWith(`${workflowId}/`));
    assert.deepEqual(
      calls.map((a) => a.model),
      [MIXTRAL],
      'the escalation to GPT-4 was never made',
    );
  });
});
