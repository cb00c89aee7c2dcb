/**
 * Encrypted history on the real stack: a chat request's history as Temporal stores it holds
 * neither the prompt nor the answer (raw fetch and `temporal workflow show`), while the codec
 * endpoint the Temporal UI uses decodes it for an operator with the key.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import proto from '@temporalio/proto';
import type { Payload } from '@temporalio/common';
import { pino } from 'pino';
import { ENCRYPTED_ENCODING } from '../../common/codec.js';
import { createCodecApp } from '../../server/codec.js';
import { temporalCliPath } from '../../scripts/temporal-dev-server.js';
import { MIXTRAL, startStack, type Stack } from '../helpers/stack.js';

const PROMPT =
  "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?";
const MARK = 'ducks lay 16 eggs';

let stack: Stack;
let codecServer: Server;
let codecUrl: string;
let workflowId: string;
let answer: string;

/** Every payload in a history (events hold them at many depths), with where it was found. */
function payloadsIn(value: unknown, path = '', out: { path: string; payload: Payload }[] = []): { path: string; payload: Payload }[] {
  if (!value || typeof value !== 'object' || ArrayBuffer.isView(value)) return out;
  const v = value as Record<string, unknown>;
  if ('data' in v && v.metadata && typeof v.metadata === 'object') out.push({ path, payload: v as Payload });
  else for (const [key, child] of Object.entries(v)) payloadsIn(child, `${path}.${key}`, out);
  return out;
}

/**
 * What Temporal must read stays plain: search attributes (indexed by the server; they hold the
 * policy, model, cost, never text) and the SDK's bookkeeping of a local activity (its `data`:
 * sequence number, attempt, activity type; its result is encrypted like any other).
 */
const mustBePlain = (path: string) => /\.searchAttributes\.indexedFields\./.test(path) || /markerRecordedEventAttributes\.details\.data\./.test(path);

const textOf = (payloads: Payload[]) => Buffer.concat(payloads.map((p) => Buffer.from(p.data ?? [])));

const cli = (...args: string[]) =>
  promisify(execFile)(temporalCliPath(), [...args, '--address', stack.config.raw.temporal.address, '--namespace', 'default', '--output', 'json'], {
    maxBuffer: 32 << 20,
  });

before(async () => {
  stack = await startStack();
  codecServer = createServer(createCodecApp({ codec: stack.codec!, allowOrigins: [], logger: pino({ level: 'silent' }) }));
  await new Promise<void>((r) => codecServer.listen(0, '127.0.0.1', r));
  codecUrl = `http://127.0.0.1:${(codecServer.address() as AddressInfo).port}`;
  const res = await stack.openai.chat.completions.create({ model: 'cascade', messages: [{ role: 'user', content: PROMPT }] }).withResponse();
  assert.equal(res.data.model, MIXTRAL);
  workflowId = res.response.headers.get('x-cascade-workflow-id')!;
  answer = res.data.choices[0]!.message.content!;
});
after(async () => {
  codecServer?.closeAllConnections();
  await new Promise((r) => codecServer?.close(r));
  await stack?.close();
});

describe('encrypted history', () => {
  it('the stored history holds neither prompt nor answer; every payload in it is encrypted', async () => {
    const history = await stack.client.workflow.getHandle(workflowId).fetchHistory(); // raw: codecs are not applied
    const bytes = Buffer.from(proto.temporal.api.history.v1.History.encode(history).finish());
    const answerPiece = JSON.stringify(answer).slice(1, 41); // as it appears inside a JSON payload
    assert.ok(answerPiece.length >= 20);
    assert.ok(!bytes.includes(MARK), 'prompt text in the stored history');
    assert.ok(!bytes.includes(answerPiece), 'answer text in the stored history');
    const found = payloadsIn(history);
    const encrypted = found.filter(({ payload }) => Buffer.from(payload.metadata!.encoding ?? []).toString() === ENCRYPTED_ENCODING);
    const plain = found.filter((f) => !encrypted.includes(f)).map((f) => f.path);
    assert.ok(encrypted.length >= 6, `encrypted payloads: ${encrypted.length}`);
    assert.deepEqual(
      plain.filter((path) => !mustBePlain(path)),
      [],
      'payloads stored unencrypted',
    );

    // Control: the same payloads, decoded with the key, hold the prompt and the answer.
    const opened = textOf(await stack.codec!.decode(encrypted.map((e) => e.payload)));
    assert.ok(opened.includes(MARK) && opened.includes(answerPiece));
  });

  it('`temporal workflow show` shows no prompt text; with the codec endpoint it shows the prompt', async () => {
    // The CLI prints payload data as base64: search the decoded bytes of every payload it shows.
    const shown = async (...extra: string[]) => {
      const out = await cli('workflow', 'show', '--workflow-id', workflowId, ...extra);
      const payloads = payloadsIn(JSON.parse(out.stdout)).map(({ payload }) => ({ data: Buffer.from(String(payload.data ?? ''), 'base64') }));
      assert.ok(payloads.length >= 6, out.stdout.slice(0, 500));
      return { raw: out.stdout, text: textOf(payloads) };
    };
    const plain = await shown();
    assert.ok(!plain.raw.includes(MARK) && !plain.text.includes(MARK), 'prompt text in `temporal workflow show`');
    assert.ok(!plain.text.includes(JSON.stringify(answer).slice(1, 41)), 'answer text in `temporal workflow show`');
    const decoded = await shown('--codec-endpoint', codecUrl);
    assert.ok(decoded.text.includes(MARK), 'the codec endpoint decodes the history for the CLI');
  });

  it("the workflow's current details (the UI's markdown, decrypted) escape $ so amounts are not read as math", async () => {
    const metadata = (await stack.client.workflow.getHandle(workflowId).query('__temporal_workflow_metadata')) as { currentDetails?: string };
    assert.match(metadata.currentDetails ?? '', /^- step 1 · .*: confidence \d\.\d\d → accepted \(\\\$0\.\d{6}\)$/m);
    assert.doesNotMatch(metadata.currentDetails ?? '', /[^\\]\$/);
  });

  it('the codec endpoint answers the Temporal UI page (CORS) and no other origin; bad bodies are OpenAI-shaped errors', async () => {
    const preflight = await fetch(`${codecUrl}/decode`, {
      method: 'OPTIONS',
      headers: { origin: 'http://127.0.0.1:8233', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'http://127.0.0.1:8233');
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /x-namespace/);
    const foreign = await fetch(`${codecUrl}/decode`, { method: 'OPTIONS', headers: { origin: 'https://evil.example' } });
    assert.equal(foreign.headers.get('access-control-allow-origin'), null);
    const bad = await fetch(`${codecUrl}/decode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"payloads": 3}' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as any).error.code, 'invalid_body');
  });
});
