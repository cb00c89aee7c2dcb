/**
 * The usage ledger on the real stack: after known requests from two API keys (accepted,
 * escalated, failed over, another policy, failed outright), GET /v1/usage totals equal the
 * responses' own costs, per key and per policy, read twice without double counting;
 * GET /v1/cascade/{id} returns one request's trace; `npm run usage` prints the table.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../../config/load.js';
import { GPT4, MIXTRAL, startStack, type Stack } from '../helpers/stack.js';

const janet = JSON.parse(readFileSync(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url), 'utf8').split('\n')[0]!).prompt as string;
const KEYS = { alpha: 'sk-test-alpha', beta: 'sk-test-beta' };
const keyId = (key: string) => `key_${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;

let stack: Stack;
let base: string;
const since = new Date(Date.now() - 1000).toISOString();
const sent: { key: string; status: number; workflowId: string; body: any }[] = [];

const api = (path: string, key = KEYS.alpha) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${key}` } });

async function chat(key: string, body: object, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
    body: JSON.stringify({ model: 'cascade', messages: [{ role: 'user', content: janet }], ...body }),
  });
  sent.push({ key, status: res.status, workflowId: res.headers.get('x-cascade-workflow-id')!, body: await res.json() });
}

const traceOf = (s: (typeof sent)[number]) => (s.status === 200 ? s.body.cascade : s.body.error.cascade);

/** /v1/usage once the ledger holds `n` requests (visibility is updated just after a workflow closes). */
async function usageWhen(n: number, query = ''): Promise<any> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const res = await api(`/v1/usage?from=${since}${query}`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as any;
    if (body.totals.requests >= n || Date.now() > deadline) return body;
    await new Promise((r) => setTimeout(r, 250));
  }
}

before(async () => {
  process.env.OPS_USAGE_TEST_KEYS = `${KEYS.alpha},${KEYS.beta}`;
  stack = await startStack({ configure: (raw) => (raw.server.api_keys_env = 'OPS_USAGE_TEST_KEYS') });
  base = stack.apiUrl.replace(/\/v1$/, '');
  await chat(KEYS.alpha, {}); // Mixtral accepted
  await chat(KEYS.alpha, { response_format: { type: 'json_object' } }); // escalated to GPT-4
  await chat(KEYS.beta, {}, { 'x-farm-fault': 'unavailable;pool=cpu' }); // failed over to gpu-a
  await chat(KEYS.beta, { model: 'cascade:simulated', messages: [{ role: 'user', content: 'Name three colours of the rainbow.' }] });
  await chat(KEYS.alpha, {}, { 'x-farm-fault': 'unavailable' }); // every pool fails
});
after(async () => {
  await stack?.close();
});

describe('usage ledger', () => {
  it('totals equal what the responses reported, per key and per policy, and a second read counts nothing twice', async () => {
    assert.deepEqual(
      sent.map((s) => s.status),
      [200, 200, 200, 200, 502],
    );
    assert.deepEqual(
      sent.slice(0, 3).map((s) => s.body.model),
      [MIXTRAL, GPT4, MIXTRAL],
    );
    const usage = await usageWhen(sent.length);
    const traces = sent.map(traceOf);
    const cost = traces.reduce((a, t) => a + t.cost_usd, 0);
    assert.equal(usage.totals.requests, 5);
    assert.equal(usage.totals.answered, 4);
    assert.equal(usage.totals.failed, 1);
    assert.ok(Math.abs(usage.totals.cost_usd - cost) < 1e-7, `${usage.totals.cost_usd} vs ${cost}`);
    assert.equal(
      usage.totals.escalations,
      traces.reduce((a, t) => a + t.escalations, 0),
    );
    assert.equal(usage.totals.escalation_rate, traces.filter((t) => t.escalations > 0).length / 5);
    assert.equal(
      usage.totals.calls,
      traces.reduce((a, t) => a + t.attempts.filter((x: any) => x.deployment !== null).length, 0),
    );
    // Savings: each answered request on its policy's top model (GPT-4 at $24.7/1M; sim-large $10 in, $30 out).
    const top = sent
      .filter((s) => s.status === 200)
      .reduce((a, s) => {
        const u = s.body.usage;
        return (
          a + (s.body.cascade.policy === 'simulated' ? u.prompt_tokens * 10 + u.completion_tokens * 30 : (u.prompt_tokens + u.completion_tokens) * 24.7) / 1e6
        );
      }, 0);
    assert.ok(Math.abs(usage.totals.top_model_cost_usd - top) < 1e-7);
    assert.ok(Math.abs(usage.totals.savings_usd - (usage.totals.top_model_cost_usd - usage.totals.answered_cost_usd)) < 1e-7);
    assert.equal(usage.by_key[keyId(KEYS.alpha)].requests, 3);
    assert.equal(usage.by_key[keyId(KEYS.beta)].requests, 2);
    assert.equal(usage.by_policy.default.requests, 4);
    assert.equal(usage.by_policy.simulated.requests, 1);

    const again = (await (await api(`/v1/usage?from=${since}&to=${usage.to}`)).json()) as any;
    assert.deepEqual(again.totals, usage.totals);

    const beta = (await (await api(`/v1/usage?from=${since}&key=${keyId(KEYS.beta)}`)).json()) as any;
    assert.equal(beta.totals.requests, 2);
    const betaCost = sent.filter((s) => s.key === KEYS.beta).reduce((a, s) => a + traceOf(s).cost_usd, 0);
    assert.ok(Math.abs(beta.totals.cost_usd - betaCost) < 1e-7);
    const simulated = (await (await api(`/v1/usage?from=${since}&policy=simulated`)).json()) as any;
    assert.equal(simulated.totals.requests, 1);
    const none = (await (await api(`/v1/usage?from=${since}&policy=no-such-policy`)).json()) as any;
    assert.equal(none.totals.requests, 0);
  });

  it('GET /v1/cascade/{id} returns one request with its trace, key, cost and top-model cost', async () => {
    const escalated = sent[1]!;
    const res = await api(`/v1/cascade/${escalated.workflowId}`);
    assert.equal(res.status, 200);
    const one = (await res.json()) as any;
    assert.equal(one.status, 'completed');
    assert.equal(one.key_id, keyId(KEYS.alpha));
    assert.equal(one.model, GPT4);
    assert.deepEqual(one.cascade, escalated.body.cascade);
    assert.equal(one.cost_usd, escalated.body.cascade.cost_usd);
    assert.ok(one.top_model_cost_usd > 0);
    const failed = (await (await api(`/v1/cascade/${sent[4]!.workflowId}`)).json()) as any;
    assert.equal(failed.status, 'failed');
    assert.deepEqual(failed.cascade, sent[4]!.body.error.cascade);
    const missing = await api('/v1/cascade/chat-no-such-request');
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as any).error.code, 'request_not_found');
  });

  it('rejects a bad query with the parameter named, and asks for a key like every /v1 route', async () => {
    const bad = await api('/v1/usage?from=yesterday');
    assert.equal(bad.status, 400);
    assert.deepEqual(((await bad.json()) as any).error.param, 'from');
    const badKey = await api('/v1/usage?key=sk-test-alpha');
    assert.equal(((await badKey.json()) as any).error.param, 'key');
    assert.equal((await fetch(`${base}/v1/usage`)).status, 401);
  });

  it('npm run usage prints the table: one row per policy and the total', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'usage.ts'), '--url', base, '--from', since],
      {
        env: { ...process.env, CASCADE_API_KEY: KEYS.beta },
      },
    );
    const lines = stdout.trim().split('\n');
    assert.match(lines[1]!, /^policy\s+requests\s+answered\s+failed\s+model calls\s+cost\s+on top model\s+saved\s+escalated$/);
    assert.match(
      lines.find((l) => l.startsWith('default'))!,
      /^default\s+4\s+3\s+1\s/,
    );
    assert.match(
      lines.find((l) => l.startsWith('simulated'))!,
      /^simulated\s+1\s+1\s+0\s/,
    );
    assert.match(lines.at(-1)!, /^total\s+5\s+4\s+1\s+\d+\s+\$\d/);
  });
});
