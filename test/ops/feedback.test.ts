/**
 * Delayed labels on the real stack: POST /v1/cascade/{id}/feedback stores a label with the
 * request (a second POST replaces it), GET /v1/cascade/{id} shows it, unknown ids are 404 and bad
 * bodies an OpenAI-shaped 400; `npm run calibrate -- --from-feedback` reads the labelled requests'
 * traces and says there are too few to fit anything.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../../config/load.js';
import { startStack, type Stack } from '../helpers/stack.js';

const prompts = readFileSync(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .slice(0, 4)
  .map((l) => JSON.parse(l).prompt as string);

let stack: Stack;
let base: string;
const ids: string[] = [];
before(async () => {
  stack = await startStack();
  base = stack.apiUrl.replace(/\/v1$/, '');
  for (const [i, prompt] of prompts.entries()) {
    const res = await fetch(`${stack.apiUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // Every other request asks for JSON, which Mixtral's recorded prose fails: escalated to GPT-4.
      body: JSON.stringify({ model: 'cascade', messages: [{ role: 'user', content: prompt }], ...(i % 2 && { response_format: { type: 'json_object' } }) }),
    });
    assert.equal(res.status, 200);
    ids.push(res.headers.get('x-cascade-workflow-id')!);
  }
});
after(async () => {
  await stack?.close();
});

const post = (id: string, body: unknown) =>
  fetch(`${base}/v1/cascade/${id}/feedback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('delayed labels', () => {
  it('stores a label with the request, replaces it on a second POST, and shows it in GET /v1/cascade/{id}', async () => {
    const first = await post(ids[0]!, { label: 'bad', note: 'wrong total' });
    assert.equal(first.status, 200);
    const stored = (await first.json()) as any;
    assert.equal(stored.policy, 'default');
    assert.equal(stored.score, 0);
    const again = await post(ids[0]!, { label: 'good', score: 0.8 });
    assert.equal(again.status, 200);
    const record = (await (await fetch(`${base}/v1/cascade/${ids[0]}`)).json()) as any;
    assert.equal(record.feedback.label, 'good');
    assert.equal(record.feedback.score, 0.8);
    assert.equal(record.feedback.note, undefined, 'replaced, not merged');
    const unlabelled = (await (await fetch(`${base}/v1/cascade/${ids[1]}`)).json()) as any;
    assert.equal(unlabelled.feedback, null);
  });

  it('answers 404 for an unknown request and an OpenAI-shaped 400 for a bad body', async () => {
    const missing = await post('chat-no-such-request', { label: 'good' });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as any).error.code, 'request_not_found');
    for (const [body, param] of [
      [{ label: 'fine' }, 'label'],
      [{ label: 'good', score: 1.5 }, 'score'],
      [{ label: 'good', extra: 1 }, null],
      [[1], null],
    ] as const) {
      const res = await post(ids[1]!, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      const err = ((await res.json()) as any).error;
      assert.equal(err.type, 'invalid_request_error');
      assert.equal(err.param, param, JSON.stringify(err));
      assert.ok(err.message && 'code' in err);
    }
  });

  it('calibrate --from-feedback turns the labelled requests into rows and says they are too few', async () => {
    for (const id of ids.slice(1)) assert.equal((await post(id, { label: 'good' })).status, 200);
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'evaluators/cli/calibrate.ts'), '--from-feedback', '--target', '0.95', '--policy', 'default'],
      { env: { ...process.env, CASCADE_CONFIG: stack.configFile }, cwd: REPO_ROOT },
    );
    assert.match(stdout, /calibrate: default: 4 labels, 4 with a trace/);
    assert.match(stdout, /NO PROMISE: too little data: 4 labelled requests, need ~30/);
  });
});
