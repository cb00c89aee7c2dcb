/**
 * `npm test`: type-checks, lints and checks formatting (the whole run only), starts one Temporal
 * dev server, then runs every test file under test/ with node's test runner against it (each file
 * starts its own farm, workers and API). Extra arguments are passed to the runner (e.g. a single file).
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../config/load.js';
import { startTemporalDevServer } from './temporal-dev-server.js';

function testFiles(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return name === 'helpers' ? [] : testFiles(path);
      return name.endsWith('.test.ts') ? [path] : [];
    })
    .sort();
}

/** Runs a tool from node_modules/.bin; resolves with its exit code. */
function tool(name: string, args: string[]): Promise<number> {
  const child = spawn(join(REPO_ROOT, 'node_modules', '.bin', name), args, { cwd: REPO_ROOT, stdio: 'inherit' });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const selected = args.some((a) => a.endsWith('.ts'));
  const files = selected ? [] : testFiles(join(REPO_ROOT, 'test')).map((f) => relative(REPO_ROOT, f));
  if (!selected) {
    process.stderr.write('[test] type-check (tsc), lint (eslint) and format check (prettier)\n');
    if ((await tool('tsc', ['-p', '.'])) !== 0) return 1;
    if ((await tool('eslint', ['.'])) !== 0) return 1;
    if ((await tool('prettier', ['--check', '--log-level', 'warn', '.'])) !== 0) {
      process.stderr.write('[test] formatting differs: run `npm run format`\n');
      return 1;
    }
  }
  const temporal = await startTemporalDevServer();
  process.stderr.write(`[test] Temporal dev server on ${temporal.address}; ${files.length || 'selected'} test files\n`);
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...args, ...files], {
      cwd: REPO_ROOT,
      stdio: 'inherit',
      env: { ...process.env, CASCADE_TEST_TEMPORAL_ADDRESS: temporal.address },
    });
    const stop = () => child.kill('SIGTERM');
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    return await new Promise<number>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
  } finally {
    await temporal.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`[test] ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
