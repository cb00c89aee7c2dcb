/**
 * Health across requests: a deployment that keeps failing is skipped by later requests (circuit
 * breaker with a probe that closes it again), and a pool with no worker is detected by
 * schedule-to-start and failed over.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MIXTRAL, startStack, type Stack } from '../helpers/stack.js';

const prompt = JSON.parse(readFileSync(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url), 'utf8').split('\n')[0]!).prompt as string;

let stack: Stack;
before(async () => {
  // No worker at all for the api pool: GPT-4 calls can only time out waiting for one.
  stack = await startStack({ poolsWithoutWorkers: ['api'] });
});
after(async () => {
  await stack?.close();
});

async function ask(model: string) {
  const res = await stack.openai.chat.completions.create({ model, messages: [{ role: 'user', content: prompt }] });
  const body = res as typeof res & { cascade: any };
  const calls = (await stack.farmLog()).filter((a) => a.request_id?.startsWith(`${body.cascade.workflow_id}/`));
  return { body, calls };
}

const setFault = (fault: object) =>
  fetch(`${stack.farmUrl('cpu').replace(/\/v1$/, '')}/farm/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(fault),
  });

describe('circuit breaker shared across requests', () => {
  it('opens after repeated failures, skips the deployment, probes after the pause and closes on success', async () => {
    await stack.farmReset();
    assert.equal((await setFault({ fault: 'unavailable', pool: 'cpu' })).status, 200);
    for (let i = 0; i < 3; i++) {
      const { body, calls } = await ask('mixtral');
      assert.equal(body.cascade.attempts.at(-1).pool, 'gpu-a');
      assert.equal(calls.filter((c) => c.pool === 'cpu').length, 3, `request ${i + 1} tried cpu (retry bound 3)`);
    }
    // Three failed calls in a row: cpu's circuit is open, later requests go straight to gpu-a.
    const skipped = await ask('mixtral');
    assert.deepEqual(
      skipped.calls.map((c) => c.pool),
      ['gpu-a'],
    );
    assert.equal(skipped.body.cascade.attempts.length, 1);

    // Still broken after the pause: the probe is one attempt, not a retry ladder, then gpu-a answers.
    await new Promise((r) => setTimeout(r, 3200));
    const failedProbe = await ask('mixtral');
    assert.deepEqual(
      failedProbe.calls.map((c) => [c.pool, c.outcome]),
      [
        ['cpu', '503'],
        ['gpu-a', 'ok'],
      ],
    );
    // The failed probe opened the circuit for another pause.
    assert.deepEqual(
      (await ask('mixtral')).calls.map((c) => c.pool),
      ['gpu-a'],
    );

    // cpu recovers; after the pause one request probes it and closes the circuit at once.
    await stack.farmReset();
    await new Promise((r) => setTimeout(r, 3200));
    const probe = await ask('mixtral');
    assert.deepEqual(
      probe.calls.map((c) => [c.pool, c.outcome]),
      [['cpu', 'ok']],
    );
    const after = await ask('mixtral');
    assert.deepEqual(
      after.calls.map((c) => c.pool),
      ['cpu'],
    );
    assert.equal(after.body.model, MIXTRAL);
  });

  it('while traffic flows, a recovered deployment gets it back within one pause of recovering', async () => {
    await stack.farmReset();
    assert.equal((await setFault({ fault: 'unavailable', pool: 'cpu' })).status, 200);
    for (let i = 0; i < 3; i++) await ask('mixtral'); // opens cpu's circuit (threshold 3)
    await stack.farmReset(); // cpu is healthy from here on
    const recoveredAt = Date.now();
    const firstPools: string[] = [];
    // Steady traffic, bounded in count: each request's first call shows where the router sent it.
    for (let i = 0; i < 60 && firstPools.at(-1) !== 'cpu'; i++) {
      firstPools.push((await ask('mixtral')).calls[0]!.pool);
      await new Promise((r) => setTimeout(r, 100));
    }
    const backAfter = Date.now() - recoveredAt;
    assert.equal(firstPools.at(-1), 'cpu', `cpu never got traffic back: ${firstPools.join(', ')}`);
    // Open for 3 s in the test config: the probe comes with the first request after the pause.
    assert.ok(backAfter < 3000 + 2000, `back after ${backAfter} ms (pause 3 s)`);
    for (let i = 0; i < 3; i++) assert.equal((await ask('mixtral')).calls[0]!.pool, 'cpu', 'the successful probe closed the circuit');
  });
});

describe('a pool with no free worker', () => {
  it('is detected by schedule-to-start and the request ends with a clean 503, not a hang', async () => {
    const started = Date.now();
    const res = await fetch(`${stack.apiUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4', messages: [{ role: 'user', content: prompt }] }),
    });
    const body = (await res.json()) as any;
    assert.equal(res.status, 503);
    assert.equal(body.error.code, 'no_capacity');
    assert.equal(body.error.cascade.attempts[0].pool, 'api');
    assert.ok(Date.now() - started < 5000, 'schedule-to-start is 1.5 s in the test config');
  });

  it('the cascade escalation skips past it: a step whose pool has no worker fails over to what can answer', async () => {
    // JSON asked: Mixtral is rejected, GPT-4's pool has no worker, so the best rejected answer is returned, flagged.
    const res = (await stack.openai.chat.completions.create({
      model: 'cascade',
      messages: [{ role: 'user', content: prompt }],
      response_format: { type: 'json_object' },
    })) as any;
    assert.equal(res.model, MIXTRAL);
    assert.equal(res.cascade.degraded, true);
    assert.equal(res.cascade.attempts.at(-1).error, 'no_capacity');
  });
});
