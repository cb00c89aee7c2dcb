/**
 * Real llama.cpp path of the model farm, on a tiny random-weight GGUF the test writes itself.
 * Proves: GGUF writer output loads, prompt templating, generation, token pieces/logprobs/counts,
 * maxTokens, aborts, per-model serialisation, clear load errors, and that node-llama-cpp neither
 * downloaded nor built anything (prebuilt binaries only).
 *
 *   node --import tsx --test test/farm/llama.test.ts
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readdir, stat, writeFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readGgufFileInfo, type Token } from 'node-llama-cpp';
import { createLlamaBackend, PieceBuilder, type LlamaBackend } from '../../farm/backends/llama.js';
import { buildTinyGguf, writeTinyGguf } from '../../farm/tools/make-tiny-gguf.js';
import type { GenerateRequest } from '../../farm/backends/types.js';

const NLC_DIR = fileURLToPath(new URL('../../node_modules/node-llama-cpp/', import.meta.url));
const PREBUILT_DIR = fileURLToPath(new URL('../../node_modules/@node-llama-cpp/linux-x64/', import.meta.url));
/** Places node-llama-cpp writes to when it downloads llama.cpp source or builds it. */
const BUILD_ARTIFACTS = [
  join(NLC_DIR, 'llama', 'localBuilds'),
  join(NLC_DIR, 'llama', 'llama.cpp'),
  join(NLC_DIR, 'llama', 'lastBuild.json'),
  join(NLC_DIR, '.temp'),
  join(NLC_DIR, 'llama', 'xpack', 'store'),
  join(NLC_DIR, 'llama', 'xpack', 'cache'),
];

async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = join(entry.parentPath, entry.name);
    if (p.includes(`${join(NLC_DIR, 'node_modules')}`)) continue;
    const s = await stat(p);
    out.set(p, `${s.size}:${s.mtimeMs}`);
  }
  return out;
}

let dir: string;
let plainPath: string;
let chatmlPath: string;
let backend: LlamaBackend;
const fetchCalls: string[] = [];
const originalFetch = globalThis.fetch;
let before_: { nlc: Map<string, string>; prebuilt: Map<string, string>; artifacts: boolean[]; homeDir: boolean };

const req = (over: Partial<GenerateRequest> = {}): GenerateRequest => ({
  model: 'tiny',
  messages: [
    { role: 'system', content: 'Answer briefly.' },
    { role: 'user', content: 'What is the cheap tier?' },
  ],
  maxTokens: 8,
  wantLogprobs: false,
  topLogprobs: 0,
  ...over,
});

before(async () => {
  // Any network use by node-llama-cpp (binary or source download) would go through fetch: record and refuse it.
  globalThis.fetch = ((input: Parameters<typeof fetch>[0]) => {
    fetchCalls.push(String(input instanceof Request ? input.url : input));
    return Promise.reject(new Error('network disabled in llama.test.ts'));
  }) as typeof fetch;
  before_ = {
    nlc: await snapshot(join(NLC_DIR, 'llama')),
    prebuilt: await snapshot(PREBUILT_DIR),
    artifacts: BUILD_ARTIFACTS.map((p) => existsSync(p)),
    homeDir: existsSync(join(homedir(), '.node-llama-cpp')),
  };
  dir = await mkdtemp(join(tmpdir(), 'cascade-llama-test-'));
  plainPath = join(dir, 'tiny-plain.gguf');
  chatmlPath = join(dir, 'tiny-chatml.gguf');
  await writeTinyGguf(plainPath, { seed: 7 });
  await writeTinyGguf(chatmlPath, { seed: 7, chatTemplate: 'chatml' });
  backend = await createLlamaBackend({
    models: [
      { name: 'tiny', gguf: plainPath, threads: 1 },
      { name: 'tiny-chatml', gguf: chatmlPath, threads: 1, maxTokens: 5 },
    ],
  });
});

after(async () => {
  await backend?.close();
  globalThis.fetch = originalFetch;
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('tiny GGUF: small, fast, deterministic, and a valid GGUF v3 llama file', async () => {
  const t0 = performance.now();
  const a = buildTinyGguf({ seed: 7 });
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `generation took ${ms} ms`);
  assert.ok(a.bytes.length < 2 * 1024 * 1024, `${a.bytes.length} bytes`);
  assert.deepEqual(buildTinyGguf({ seed: 7 }).bytes, a.bytes, 'same seed, same bytes');
  assert.notDeepEqual(buildTinyGguf({ seed: 8 }).bytes, a.bytes, 'other seed, other weights');
  assert.deepEqual(new Uint8Array(await readFile(plainPath)), a.bytes);

  const view = new DataView(a.bytes.buffer, a.bytes.byteOffset);
  assert.equal(new TextDecoder().decode(a.bytes.subarray(0, 4)), 'GGUF');
  assert.equal(view.getUint32(4, true), 3);
  assert.equal(view.getBigUint64(8, true), BigInt(a.tensorCount));

  // Cross-check with node-llama-cpp's own GGUF parser (pure JS, reads the local file only).
  const info = await readGgufFileInfo(plainPath, { readTensorInfo: true });
  const md = info.metadata as unknown as Record<string, Record<string, unknown>>;
  assert.equal(info.version, 3);
  assert.equal(md.general?.architecture, 'llama');
  assert.equal(md.general?.alignment, 32);
  const llamaMd = md.llama as Record<string, unknown>;
  assert.equal(llamaMd.embedding_length, 64);
  assert.equal(llamaMd.block_count, 2);
  assert.equal(llamaMd.context_length, 256);
  assert.equal((llamaMd.attention as Record<string, unknown>).head_count, 4);
  const names = (info.tensorInfo ?? []).map((t) => t.name);
  for (const n of ['token_embd.weight', 'output_norm.weight', 'output.weight']) assert.ok(names.includes(n), n);
  for (const l of [0, 1]) {
    for (const part of ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down']) {
      assert.ok(names.includes(`blk.${l}.${part}.weight`), `blk.${l}.${part}.weight`);
    }
  }
  const embd = info.tensorInfo?.find((t) => t.name === 'token_embd.weight');
  assert.deepEqual(embd?.dimensions.map(Number), [64, a.vocabSize]);
  const down = info.tensorInfo?.find((t) => t.name === 'blk.0.ffn_down.weight');
  assert.deepEqual(down?.dimensions.map(Number), [128, 64]);
  for (const t of info.tensorInfo ?? []) assert.equal(Number(t.offset) % 32, 0, `${t.name} offset aligned`);
});

test('loads through prebuilt llama.cpp with the requested threads and picks the template', () => {
  assert.equal(backend.kind, 'llama');
  assert.deepEqual(backend.models(), ['tiny', 'tiny-chatml']);
  const [plain, chatml] = backend.info();
  assert.equal(plain?.binary, 'prebuilt');
  assert.equal(plain?.threads, 1);
  assert.equal(plain?.contextSize, 256);
  assert.equal(plain?.templateFromGguf, false);
  assert.equal(plain?.chatTemplate, 'General');
  assert.equal(chatml?.templateFromGguf, true);
  assert.equal(chatml?.chatTemplate, 'JinjaTemplate');

  const msgs = req().messages;
  const plainPrompt = backend.renderPrompt('tiny', msgs) ?? '';
  assert.match(plainPrompt, /### Human\nWhat is the cheap tier\?\n\n### Assistant\n$/);
  const chatmlPrompt = backend.renderPrompt('tiny-chatml', msgs) ?? '';
  assert.match(chatmlPrompt, /<\|im_start\|>/);
  assert.match(chatmlPrompt, /<\|im_end\|>/);
  assert.equal(backend.renderPrompt('nope', msgs), null);
});

test('generates a short answer: pieces, logprobs, counts, finishReason, determinism', async () => {
  const a = await backend.generate(req({ wantLogprobs: true, topLogprobs: 3 }));
  assert.ok(a);
  assert.equal(a.simulated, false);
  assert.equal(a.finishReason, 'length');
  assert.equal(a.tokens.length, 8);
  assert.equal(a.outputTokens, 8);
  assert.ok(a.inputTokens > 10, `inputTokens ${a.inputTokens}`);
  assert.ok(a.text.trim().length > 0, 'non-empty text');
  assert.equal(a.tokens.map((t) => t.text).join(''), a.text, 'pieces concatenate to the text');
  for (const t of a.tokens) {
    assert.ok(typeof t.logprob === 'number' && Number.isFinite(t.logprob) && t.logprob <= 0, `logprob ${t.logprob}`);
    assert.ok(t.topLogprobs && t.topLogprobs.length === 3);
    // Greedy decoding: the chosen token is the most likely one.
    assert.ok(Math.abs(t.topLogprobs[0]!.logprob - t.logprob!) < 1e-6);
    assert.ok(t.topLogprobs[0]!.logprob >= t.topLogprobs[1]!.logprob);
  }
  // Temperature 0 (the default): the same request gives the same answer, also after other prompts
  // went through the same context sequence (prefix reuse).
  const b = await backend.generate(req());
  await backend.generate(req({ messages: [{ role: 'user', content: 'Something else entirely.' }] }));
  const c = await backend.generate(req());
  assert.equal(b?.text, a.text);
  assert.equal(c?.text, a.text);
  assert.equal(b?.tokens[0]?.topLogprobs, undefined, 'top logprobs only when asked');

  // Sampling with temperature is seeded: reproducible too.
  const s1 = await backend.generate(req({ temperature: 0.9 }));
  const s2 = await backend.generate(req({ temperature: 0.9 }));
  assert.equal(s1?.text, s2?.text);
});

test('maxTokens: per request, capped by the model config; unknown model gives null', async () => {
  const three = await backend.generate(req({ maxTokens: 3 }));
  assert.equal(three?.outputTokens, 3);
  assert.equal(three?.finishReason, 'length');
  const capped = await backend.generate(req({ model: 'tiny-chatml', maxTokens: 50 }));
  assert.equal(capped?.outputTokens, 5, 'model maxTokens 5 caps the request');
  const dflt = await backend.generate(req({ model: 'tiny-chatml', maxTokens: undefined }));
  assert.equal(dflt?.outputTokens, 5);
  assert.equal(await backend.generate(req({ model: 'not-here' })), null);
});

test('concurrent requests to one model are serialised and all answered', async () => {
  const answers = await Promise.all([1, 2, 3, 4].map(() => backend.generate(req({ maxTokens: 6 }))));
  const texts = answers.map((a) => a?.text);
  assert.equal(new Set(texts).size, 1, 'identical requests, identical greedy answers');
  assert.ok(answers.every((a) => a?.outputTokens === 6));
});

test('AbortSignal: pre-aborted, aborted mid-generation, aborted while queued', async () => {
  const pre = new AbortController();
  pre.abort();
  await assert.rejects(backend.generate(req({ signal: pre.signal })), { name: 'AbortError' });

  const mid = new AbortController();
  const long = backend.generate(req({ maxTokens: 200, signal: mid.signal }));
  setImmediate(() => mid.abort());
  await assert.rejects(long, { name: 'AbortError' });

  // A request waiting for the model's single sequence leaves the queue when aborted.
  const running = backend.generate(req({ maxTokens: 30 }));
  const queued = new AbortController();
  const waiting = backend.generate(req({ signal: queued.signal }));
  queued.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
  assert.equal((await running)?.outputTokens, 30);

  // The sequence was released: the model still answers.
  assert.equal((await backend.generate(req()))?.outputTokens, 8);
});

test('close() stops running and queued generations, then frees the model', async () => {
  const own = await createLlamaBackend({ models: [{ name: 'c', gguf: plainPath, threads: 1 }] });
  const running = own.generate(req({ model: 'c', maxTokens: 200 }));
  const queued = own.generate(req({ model: 'c', maxTokens: 200 }));
  const settled = Promise.allSettled([running, queued]);
  await new Promise((r) => setImmediate(r));
  await own.close();
  const results = await settled;
  assert.equal(results[1]?.status, 'rejected', 'the queued request never ran');
  for (const r of results) {
    if (r.status === 'rejected') assert.match(String(r.reason), /closed/);
  }
  await assert.rejects(own.generate(req({ model: 'c' })), /closed/);
  await own.close(); // idempotent
  // The shared llama.cpp instance is still usable by the other backend.
  assert.equal((await backend.generate(req({ maxTokens: 2 })))?.outputTokens, 2);
});

test('load errors name the GGUF path and the reason', async () => {
  const missing = join(dir, 'does-not-exist.gguf');
  await assert.rejects(createLlamaBackend({ models: [{ name: 'm', gguf: missing }] }), (err: Error) => {
    assert.ok(err.message.includes(missing), err.message);
    assert.match(err.message, /file not found/);
    return true;
  });
  const notGguf = join(dir, 'not-a-model.gguf');
  await writeFile(notGguf, 'this is a text file, not a model at all');
  await assert.rejects(createLlamaBackend({ models: [{ name: 'm', gguf: notGguf }] }), (err: Error) => {
    assert.ok(err.message.includes(notGguf), err.message);
    assert.match(err.message, /not a GGUF file/);
    return true;
  });
  const truncated = join(dir, 'truncated.gguf');
  await writeFile(truncated, buildTinyGguf({ seed: 7 }).bytes.subarray(0, 300_000));
  await assert.rejects(createLlamaBackend({ models: [{ name: 'm', gguf: truncated }], logLevel: 'disabled' }), (err: Error) => {
    assert.ok(err.message.includes(truncated), err.message);
    assert.match(err.message, /Failed to load model/);
    assert.match(err.message, /not within the file bounds/, 'the llama.cpp reason is included');
    return true;
  });
  await assert.rejects(createLlamaBackend({ models: [] }), /at least one/);
  await assert.rejects(createLlamaBackend({ models: [{ name: 'm', gguf: plainPath, threads: 0 }] }), /threads must be a positive integer/);
  await assert.rejects(
    createLlamaBackend({
      models: [
        { name: 'm', gguf: plainPath },
        { name: 'm', gguf: plainPath },
      ],
    }),
    /configured twice/,
  );
});

test('token pieces: UTF-8 split across tokens, stop strings cut mid-token, joined pieces = text', () => {
  // A fake byte-level detokenizer: token i is BYTES[i]; incomplete UTF-8 decodes to U+FFFD like llama.cpp's.
  const enc = new TextEncoder();
  const BYTES: Uint8Array[] = [
    enc.encode('Hello'),
    enc.encode(' wor'),
    enc.encode('ld'),
    new Uint8Array([0xc3]), // first byte of "é"
    new Uint8Array([0xa9]), // second byte
    enc.encode('!\n\n### Hu'),
    enc.encode('man'),
  ];
  const fake = {
    detokenize: (tokens: readonly Token[]) => {
      const parts = tokens.map((t) => BYTES[t as unknown as number]!);
      const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) {
        all.set(p, o);
        o += p.length;
      }
      return new TextDecoder().decode(all);
    },
  };
  const ids = (xs: number[]) => xs as unknown as Token[];

  const b = new PieceBuilder(fake, []);
  for (const t of ids([0, 1, 2, 3, 4])) b.push(t);
  assert.deepEqual(b.pieces, ['Hello', ' wor', 'ld', '', '\u00e9']);
  assert.equal(b.text, 'Hello world\u00e9');

  // A text stop trigger that starts inside token 5 and ends in token 6: token 5 keeps "!", token 6 goes.
  for (const t of ids([5, 6])) b.push(t);
  b.truncateText(b.text.indexOf('\n\n### Human'));
  assert.deepEqual(b.pieces, ['Hello', ' wor', 'ld', '', '\u00e9', '!']);
  assert.equal(b.text, 'Hello world\u00e9!');
  assert.equal(b.tokens.length, 6);

  // A half character left at the end is dropped (its token keeps an empty piece); a stop exactly at a
  // token boundary drops that token.
  const c = new PieceBuilder(fake, []);
  for (const t of ids([0, 1, 3])) c.push(t);
  assert.deepEqual(c.pieces, ['Hello', ' wor', '']);
  c.finish();
  assert.equal(c.pieces.join(''), c.text);
  assert.equal(c.text, 'Hello wor');
  assert.equal(c.tokens.length, 3);
  c.truncateText('Hello'.length);
  assert.deepEqual(c.pieces, ['Hello']);

  // A token-level stop (special tokens) keeps the tokens before it.
  const d = new PieceBuilder(fake, []);
  for (const t of ids([0, 1, 2, 6])) d.push(t);
  d.truncateTokens(3);
  assert.equal(d.text, 'Hello world');
  assert.equal(d.tokens.length, 3);
});

test('nothing was downloaded or built', async () => {
  assert.deepEqual(fetchCalls, [], 'no fetch calls');
  assert.deepEqual(
    BUILD_ARTIFACTS.map((p) => existsSync(p)),
    before_.artifacts,
    `no new build/download artifacts among ${BUILD_ARTIFACTS.join(', ')}`,
  );
  assert.ok(!existsSync(join(NLC_DIR, 'llama', 'localBuilds')), 'no local llama.cpp build');
  assert.deepEqual(await snapshot(join(NLC_DIR, 'llama')), before_.nlc, 'node-llama-cpp/llama unchanged');
  assert.deepEqual(await snapshot(PREBUILT_DIR), before_.prebuilt, 'prebuilt binaries unchanged');
  assert.equal(existsSync(join(homedir(), '.node-llama-cpp')), before_.homeDir, 'no ~/.node-llama-cpp created');
});
