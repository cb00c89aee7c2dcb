/**
 * Content-Encoding on request bodies, through real HTTP: gzip and deflate bodies are answered on
 * the chat and documents routes; a body that does not match its Content-Encoding is a 400 and an
 * encoding the API cannot read a 415, never a 500.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync, gzipSync } from 'node:zlib';
import { MIXTRAL, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.close();
});

const chat = JSON.stringify({ model: MIXTRAL, messages: [{ role: 'user', content: 'What is 2+2?' }] });
const doc = JSON.stringify({ task: 'summarize', model: 'cascade:simulated', text: 'Revenue rose 12 percent in the north. Costs fell.' });
const compress = { gzip: (s: string) => new Uint8Array(gzipSync(s)), deflate: (s: string) => new Uint8Array(deflateSync(s)) };

async function post(path: string, body: Uint8Array<ArrayBuffer> | string, headers: Record<string, string>) {
  const res = await fetch(`${stack.apiUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: res.status, body: (await res.json()) as any };
}

describe('compressed request bodies', () => {
  for (const encoding of ['gzip', 'deflate'] as const) {
    it(`answers a ${encoding} chat request and accepts a ${encoding} document job`, async () => {
      const answered = await post('/chat/completions', compress[encoding](chat), { 'content-encoding': encoding });
      assert.equal(answered.status, 200, JSON.stringify(answered.body));
      assert.equal(answered.body.object, 'chat.completion');
      const job = await post('/documents', compress[encoding](doc), { 'content-encoding': encoding });
      assert.equal(job.status, 202, JSON.stringify(job.body));
      assert.equal(job.body.status, 'running');
      await fetch(`${stack.apiUrl}/documents/${job.body.id}`, { method: 'DELETE' });
    });

    it(`refuses a body labelled ${encoding} that is not compressed with 400 invalid_body, chat and documents`, async () => {
      for (const [path, body] of [
        ['/chat/completions', chat],
        ['/documents', doc],
      ] as const) {
        const res = await post(path, body, { 'content-encoding': encoding });
        assert.equal(res.status, 400, `${path}: ${JSON.stringify(res.body)}`);
        assert.deepEqual(Object.keys(res.body.error).sort(), ['code', 'message', 'param', 'type']);
        assert.equal(res.body.error.code, 'invalid_body');
        assert.equal(res.body.error.type, 'invalid_request_error');
        assert.match(res.body.error.message, new RegExp(`not valid ${encoding} data`));
      }
    });
  }

  it('refuses a truncated gzip body with 400 invalid_body', async () => {
    const res = await post('/chat/completions', compress.gzip(chat).subarray(0, 20), { 'content-encoding': 'gzip' });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'invalid_body');
  });

  it('refuses an encoding it cannot read with 415 unsupported_encoding, chat and documents', async () => {
    for (const path of ['/chat/completions', '/documents']) {
      const res = await post(path, chat, { 'content-encoding': 'compress' });
      assert.equal(res.status, 415, `${path}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'unsupported_encoding');
      assert.match(res.body.error.message, /compress/);
    }
  });

  it('refuses a compressed multipart upload with 415 (the upload parser reads it raw)', async () => {
    const form = new FormData();
    form.set('task', 'summarize');
    form.set('file', new Blob(['Some text.'], { type: 'text/plain' }), 'a.txt');
    const encoded = new Response(form);
    const raw = Buffer.from(await encoded.arrayBuffer());
    const res = await fetch(`${stack.apiUrl}/documents`, {
      method: 'POST',
      headers: { 'content-type': encoded.headers.get('content-type')!, 'content-encoding': 'gzip' },
      body: new Uint8Array(gzipSync(raw)),
    });
    const body = (await res.json()) as any;
    assert.equal(res.status, 415, JSON.stringify(body));
    assert.equal(body.error.code, 'unsupported_encoding');
  });
});
