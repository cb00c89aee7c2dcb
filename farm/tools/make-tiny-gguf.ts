/**
 * Writes a tiny, valid GGUF v3 file of a llama-architecture model with seeded random F32 weights.
 *
 * Purpose: exercise the real llama.cpp loading and generation path (farm/backends/llama.ts) in CI
 * without downloading anything. The weights are random, so the text is gibberish; what matters is
 * that llama.cpp accepts the file, tokenizes, evaluates and samples.
 *
 * Layout written (all little-endian):
 *   header:  "GGUF", u32 version=3, u64 tensor_count, u64 kv_count
 *   kv:      gguf string key, u32 value type, value (arrays: u32 elem type, u64 count, elems)
 *   tensors: gguf string name, u32 n_dims, u64 ne[0..n_dims) (ne[0] = contiguous dim), u32 ggml type, u64 offset
 *   padding to general.alignment, then the data blob; every tensor offset is a multiple of the alignment.
 *
 * The tokenizer is SentencePiece-style ("llama" model): <unk>/<s>/</s>, the 256 byte-fallback tokens
 * <0x00>..<0xFF> (llama.cpp needs <0x0A> for its newline token), ChatML control tokens, printable ASCII
 * characters, and word pieces prefixed with U+2581 whose every prefix is also in the vocab so the
 * SPM bigram merge can build whole words.
 *
 * CLI:  node --import tsx farm/tools/make-tiny-gguf.ts <out.gguf> [--seed N] [--chatml] [--layers N] [--embd N]
 */
import { writeFile, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { seededRandom } from '../../common/random.js';

export interface TinyGgufOptions {
  /** PRNG seed for the weights; same seed and options give a byte-identical file. Default 42. */
  seed?: number;
  /** Embedding width. Must be a multiple of `heads`. Default 64. */
  embedding?: number;
  /** Transformer blocks. Default 2. */
  layers?: number;
  /** Attention heads. Default 4. */
  heads?: number;
  /** KV heads (GQA when smaller than heads; must divide heads). Default = heads. */
  headsKv?: number;
  /** Feed-forward width. Default 2 * embedding. */
  feedForward?: number;
  /** Training context length written to the metadata. Default 256. */
  contextLength?: number;
  /**
   * Chat template stored as `tokenizer.chat_template`:
   * 'none' (default, no template), 'chatml' (a standard ChatML Jinja template), or a literal Jinja string.
   */
  chatTemplate?: 'none' | 'chatml' | (string & {});
  /** `general.name`. Default "cascade-tiny-random". */
  name?: string;
  /**
   * Zero the output rows of control and byte tokens so greedy decoding emits ordinary word pieces
   * (random weights would otherwise sometimes pick EOS first or emit lone UTF-8 bytes). Default true.
   */
  suppressSpecialOutput?: boolean;
}

export interface TinyGgufInfo {
  path: string;
  bytes: number;
  vocabSize: number;
  tensorCount: number;
  parameters: number;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" read as little-endian u32
const GGUF_VERSION = 3;
const ALIGNMENT = 32;

// gguf metadata value types
const T_UINT32 = 4;
const T_INT32 = 5;
const T_FLOAT32 = 6;
const T_BOOL = 7;
const T_STRING = 8;
const T_ARRAY = 9;

// ggml tensor type
const GGML_TYPE_F32 = 0;

// llama.cpp token types
const TOKEN_NORMAL = 1;
const TOKEN_UNKNOWN = 2;
const TOKEN_CONTROL = 3;
const TOKEN_BYTE = 6;

const SPACE = '\u2581';

export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const WORDS = (
  'the of and to in is it you that was for on are with as his they be at one have this from or had by ' +
  'word but what some we can out other were all there when up use your how said an each she which do their ' +
  'time if will way about many then them write would like so these her long make thing see him two has look ' +
  'more day could go come did number sound no most people my over know water than call first who may down ' +
  'side been now find any new work part take get place made live where after back little only round man year ' +
  'came show every good me give our under name very through just form sentence great think say help low line ' +
  'answer yes model cascade router token fast cheap small large tier cost route answer question true false ' +
  'hello world test data value result error ok done'
).split(' ');

interface Vocab {
  tokens: string[];
  scores: number[];
  types: number[];
  unk: number;
  bos: number;
  eos: number;
  /** Indices whose output row is zeroed when suppressSpecialOutput is on. */
  suppressed: number[];
}

function buildVocab(): Vocab {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const seen = new Set<string>();
  const add = (text: string, score: number, type: number): number => {
    if (seen.has(text)) return -1;
    seen.add(text);
    tokens.push(text);
    scores.push(score);
    types.push(type);
    return tokens.length - 1;
  };
  const unk = add('<unk>', 0, TOKEN_UNKNOWN);
  const bos = add('<s>', 0, TOKEN_CONTROL);
  const eos = add('</s>', 0, TOKEN_CONTROL);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0, TOKEN_BYTE);
  add('<|im_start|>', 0, TOKEN_CONTROL);
  add('<|im_end|>', 0, TOKEN_CONTROL);
  const firstNormal = tokens.length;
  // Single characters: the SPM merge starts from characters, so each must be a token (or fall back to bytes).
  add(SPACE, -1, TOKEN_NORMAL);
  for (let c = 33; c < 127; c++) add(String.fromCharCode(c), -2, TOKEN_NORMAL);
  // Word pieces: "▁w", "▁wo", "▁wor", "▁word"; longer pieces score higher so merges run left to right.
  for (const word of WORDS) {
    const full = SPACE + word;
    for (let len = 2; len <= full.length; len++) add(full.slice(0, len), len, TOKEN_NORMAL);
  }
  const suppressed: number[] = [];
  for (let i = 0; i < firstNormal; i++) suppressed.push(i);
  return { tokens, scores, types, unk, bos, eos, suppressed };
}

/** Growable little-endian byte writer. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    let size = this.buf.length;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.ensure(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number): void {
    this.ensure(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  f32(v: number): void {
    this.ensure(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  padTo(alignment: number): void {
    while (this.length % alignment !== 0) this.u8(0);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

type KvValue =
  | { type: 'u32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'str'; value: string }
  | { type: 'str[]'; value: string[] }
  | { type: 'f32[]'; value: number[] }
  | { type: 'i32[]'; value: number[] };

function writeKv(w: ByteWriter, key: string, v: KvValue): void {
  w.str(key);
  switch (v.type) {
    case 'u32':
      w.u32(T_UINT32);
      w.u32(v.value);
      break;
    case 'f32':
      w.u32(T_FLOAT32);
      w.f32(v.value);
      break;
    case 'bool':
      w.u32(T_BOOL);
      w.u8(v.value ? 1 : 0);
      break;
    case 'str':
      w.u32(T_STRING);
      w.str(v.value);
      break;
    case 'str[]':
      w.u32(T_ARRAY);
      w.u32(T_STRING);
      w.u64(v.value.length);
      for (const s of v.value) w.str(s);
      break;
    case 'f32[]':
      w.u32(T_ARRAY);
      w.u32(T_FLOAT32);
      w.u64(v.value.length);
      for (const x of v.value) w.f32(x);
      break;
    case 'i32[]':
      w.u32(T_ARRAY);
      w.u32(T_INT32);
      w.u64(v.value.length);
      for (const x of v.value) w.i32(x);
      break;
  }
}

interface TensorSpec {
  name: string;
  /** ggml order: dims[0] is the contiguous (row) dimension. */
  dims: number[];
  data: Float32Array;
}

/** Builds the GGUF bytes in memory (no I/O). */
export function buildTinyGguf(opts: TinyGgufOptions = {}): {
  bytes: Uint8Array;
  vocabSize: number;
  tensorCount: number;
  parameters: number;
} {
  const seed = opts.seed ?? 42;
  const nEmbd = opts.embedding ?? 64;
  const nLayer = opts.layers ?? 2;
  const nHead = opts.heads ?? 4;
  const nHeadKv = opts.headsKv ?? nHead;
  const nFf = opts.feedForward ?? nEmbd * 2;
  const nCtx = opts.contextLength ?? 256;
  const suppress = opts.suppressSpecialOutput ?? true;
  for (const [k, v] of Object.entries({ seed, nEmbd, nLayer, nHead, nHeadKv, nFf, nCtx })) {
    if (!Number.isInteger(v) || v < (k === 'seed' ? 0 : 1)) throw new Error(`make-tiny-gguf: ${k} must be a positive integer, got ${v}`);
  }
  if (nEmbd % nHead !== 0) throw new Error(`make-tiny-gguf: embedding (${nEmbd}) must be a multiple of heads (${nHead})`);
  if (nHead % nHeadKv !== 0) throw new Error(`make-tiny-gguf: headsKv (${nHeadKv}) must divide heads (${nHead})`);
  const headDim = nEmbd / nHead;
  const nEmbdKv = headDim * nHeadKv;

  const vocab = buildVocab();
  const nVocab = vocab.tokens.length;
  const rand = seededRandom(seed);

  const uniform = (count: number, scale: number): Float32Array => {
    const a = new Float32Array(count);
    for (let i = 0; i < count; i++) a[i] = (rand() * 2 - 1) * scale;
    return a;
  };
  const ones = (count: number): Float32Array => new Float32Array(count).fill(1);
  const matrix = (cols: number, rows: number): Float32Array => uniform(cols * rows, 1 / Math.sqrt(cols));

  const tensors: TensorSpec[] = [];
  tensors.push({ name: 'token_embd.weight', dims: [nEmbd, nVocab], data: uniform(nEmbd * nVocab, 1) });
  for (let l = 0; l < nLayer; l++) {
    const p = `blk.${l}.`;
    tensors.push({ name: p + 'attn_norm.weight', dims: [nEmbd], data: ones(nEmbd) });
    tensors.push({ name: p + 'attn_q.weight', dims: [nEmbd, nEmbd], data: matrix(nEmbd, nEmbd) });
    tensors.push({ name: p + 'attn_k.weight', dims: [nEmbd, nEmbdKv], data: matrix(nEmbd, nEmbdKv) });
    tensors.push({ name: p + 'attn_v.weight', dims: [nEmbd, nEmbdKv], data: matrix(nEmbd, nEmbdKv) });
    tensors.push({ name: p + 'attn_output.weight', dims: [nEmbd, nEmbd], data: matrix(nEmbd, nEmbd) });
    tensors.push({ name: p + 'ffn_norm.weight', dims: [nEmbd], data: ones(nEmbd) });
    tensors.push({ name: p + 'ffn_gate.weight', dims: [nEmbd, nFf], data: matrix(nEmbd, nFf) });
    tensors.push({ name: p + 'ffn_up.weight', dims: [nEmbd, nFf], data: matrix(nEmbd, nFf) });
    tensors.push({ name: p + 'ffn_down.weight', dims: [nFf, nEmbd], data: matrix(nFf, nEmbd) });
  }
  tensors.push({ name: 'output_norm.weight', dims: [nEmbd], data: ones(nEmbd) });
  // Output rows (one per token, nEmbd wide): a larger scale gives peaked, deterministic-looking distributions.
  const output = uniform(nEmbd * nVocab, 0.5);
  if (suppress) for (const id of vocab.suppressed) output.fill(0, id * nEmbd, (id + 1) * nEmbd);
  tensors.push({ name: 'output.weight', dims: [nEmbd, nVocab], data: output });

  const template =
    opts.chatTemplate === undefined || opts.chatTemplate === 'none' ? undefined : opts.chatTemplate === 'chatml' ? CHATML_TEMPLATE : opts.chatTemplate;

  const kv: [string, KvValue][] = [
    ['general.architecture', { type: 'str', value: 'llama' }],
    ['general.name', { type: 'str', value: opts.name ?? 'cascade-tiny-random' }],
    ['general.alignment', { type: 'u32', value: ALIGNMENT }],
    ['general.file_type', { type: 'u32', value: 0 }], // ALL_F32
    ['llama.context_length', { type: 'u32', value: nCtx }],
    ['llama.embedding_length', { type: 'u32', value: nEmbd }],
    ['llama.block_count', { type: 'u32', value: nLayer }],
    ['llama.feed_forward_length', { type: 'u32', value: nFf }],
    ['llama.attention.head_count', { type: 'u32', value: nHead }],
    ['llama.attention.head_count_kv', { type: 'u32', value: nHeadKv }],
    ['llama.rope.dimension_count', { type: 'u32', value: headDim }],
    ['llama.rope.freq_base', { type: 'f32', value: 10000 }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
    ['llama.vocab_size', { type: 'u32', value: nVocab }],
    ['tokenizer.ggml.model', { type: 'str', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'str[]', value: vocab.tokens }],
    ['tokenizer.ggml.scores', { type: 'f32[]', value: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: 'i32[]', value: vocab.types }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: vocab.unk }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: vocab.bos }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: vocab.eos }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
  ];
  if (template !== undefined) kv.push(['tokenizer.chat_template', { type: 'str', value: template }]);

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(kv.length);
  for (const [key, value] of kv) writeKv(w, key, value);

  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    offset += t.data.byteLength;
    offset = Math.ceil(offset / ALIGNMENT) * ALIGNMENT;
  }
  tensors.forEach((t, i) => {
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GGML_TYPE_F32);
    w.u64(offsets[i]!);
  });
  w.padTo(ALIGNMENT);
  const dataStart = w.length;
  tensors.forEach((t, i) => {
    // Pad up to the tensor's recorded offset (relative to the data section).
    while (w.length < dataStart + offsets[i]!) w.u8(0);
    w.bytes(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  });
  w.padTo(ALIGNMENT);

  const parameters = tensors.reduce((n, t) => n + t.data.length, 0);
  return { bytes: w.result(), vocabSize: nVocab, tensorCount: tensors.length, parameters };
}

/** Writes the tiny GGUF to `path` (parent directories are created). */
export async function writeTinyGguf(path: string, opts: TinyGgufOptions = {}): Promise<TinyGgufInfo> {
  const { bytes, vocabSize, tensorCount, parameters } = buildTinyGguf(opts);
  const abs = resolve(path);
  await mkdir(dirname(abs), { recursive: true });
  await writeFile(abs, bytes);
  return { path: abs, bytes: bytes.length, vocabSize, tensorCount, parameters };
}

interface CliArgs {
  out: string;
  opts: TinyGgufOptions;
  /** --bench: after writing, measure generation speed through the farm's llama backend. */
  bench?: { gguf?: string; threads: number; tokens: number; rounds: number };
}

const USAGE =
  'usage: make-tiny-gguf <out.gguf> [--seed N] [--layers N] [--embd N] [--heads N] [--ctx N] [--chatml]\n' +
  '                      [--bench [--threads N] [--tokens N] [--rounds N] [--gguf other.gguf]]\n' +
  '  --bench measures the written model (or --gguf, any GGUF) through farm/backends/llama.ts\n';

function parseCli(argv: string[]): CliArgs {
  const opts: TinyGgufOptions = {};
  let out: string | undefined;
  let bench: CliArgs['bench'];
  const benchOpts = { threads: 1, tokens: 64, rounds: 3 } as NonNullable<CliArgs['bench']>;
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n)) throw new Error(`${flag} needs an integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--seed') opts.seed = num(a, argv[++i]);
    else if (a === '--layers') opts.layers = num(a, argv[++i]);
    else if (a === '--embd') opts.embedding = num(a, argv[++i]);
    else if (a === '--heads') opts.heads = num(a, argv[++i]);
    else if (a === '--ctx') opts.contextLength = num(a, argv[++i]);
    else if (a === '--chatml') opts.chatTemplate = 'chatml';
    else if (a === '--bench') bench = benchOpts;
    else if (a === '--threads') benchOpts.threads = num(a, argv[++i]);
    else if (a === '--tokens') benchOpts.tokens = num(a, argv[++i]);
    else if (a === '--rounds') benchOpts.rounds = num(a, argv[++i]);
    else if (a === '--gguf') {
      const v = argv[++i];
      if (v === undefined) throw new Error('--gguf needs a path');
      benchOpts.gguf = v;
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else if (a.startsWith('-')) throw new Error(`unknown flag ${a}`);
    else if (out === undefined) out = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (out === undefined) throw new Error(`missing output path\n${USAGE}`);
  return { out, opts, ...(bench ? { bench } : {}) };
}

/**
 * Generation speed through the farm's llama backend. Prompt cost is measured with maxTokens 1;
 * decode speed is (tokens - 1) / (full time - prompt time), median over the rounds. Each round uses
 * a different prompt so no prefix cache helps beyond the template's common start.
 */
async function runBench(gguf: string, b: NonNullable<CliArgs['bench']>): Promise<void> {
  const { createLlamaBackend } = await import('../backends/llama.js');
  const t0 = performance.now();
  const backend = await createLlamaBackend({
    models: [{ name: 'bench', gguf, threads: b.threads, maxTokens: b.tokens }],
  });
  const createMs = performance.now() - t0;
  const info = backend.info()[0]!;
  const ask = (i: number, maxTokens: number) =>
    backend.generate({
      model: 'bench',
      messages: [{ role: 'user', content: `Story ${i}: write a long story about a robot that learns to paint.` }],
      maxTokens,
      wantLogprobs: false,
      topLogprobs: 0,
    });
  await ask(-1, 2); // warm-up (page in the weights)
  const decode: number[] = [];
  const prompt: number[] = [];
  let inputTokens = 0;
  let outputTokens = 0;
  for (let i = 0; i < b.rounds; i++) {
    const p0 = performance.now();
    await ask(i, 1);
    const promptMs = performance.now() - p0;
    await ask(1000 + i, 1); // evict the cached prompt of round i
    const g0 = performance.now();
    const full = await ask(i, b.tokens);
    const fullMs = performance.now() - g0;
    if (!full) throw new Error('no answer');
    inputTokens = full.inputTokens;
    outputTokens = full.outputTokens;
    prompt.push((full.inputTokens / promptMs) * 1000);
    if (full.outputTokens > 1) decode.push(((full.outputTokens - 1) / Math.max(1e-3, fullMs - promptMs)) * 1000);
  }
  await backend.close();
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN;
  process.stdout.write(
    `bench ${gguf}\n` +
      `  threads ${info.threads}, context ${info.contextSize}, template ${info.chatTemplate}, binary ${info.binary}\n` +
      `  backend create ${createMs.toFixed(0)} ms (model load ${info.loadMs} ms), model ${(info.modelBytes / 1e6).toFixed(1)} MB\n` +
      `  prompt ${inputTokens} tokens: ${median(prompt).toFixed(0)} tokens/s; ` +
      `decode ${outputTokens} tokens: ${median(decode).toFixed(1)} tokens/s (median of ${b.rounds})\n` +
      `  process RSS ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB\n`,
  );
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  try {
    const { out, opts, bench } = parseCli(process.argv.slice(2));
    const t0 = performance.now();
    const info = await writeTinyGguf(out, opts);
    const ms = (performance.now() - t0).toFixed(1);
    process.stdout.write(
      `wrote ${info.path}: ${info.bytes} bytes, ${info.tensorCount} tensors, ${info.parameters} parameters, vocab ${info.vocabSize}, ${ms} ms\n`,
    );
    if (bench) await runBench(bench.gguf ?? info.path, bench);
  } catch (err) {
    process.stderr.write(`make-tiny-gguf: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
