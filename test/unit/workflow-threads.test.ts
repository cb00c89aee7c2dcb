/**
 * workers/workflow-threads.mjs turns off the SDK's per-promise stack-trace hook in worker threads
 * by reaching into SDK internals: this fails when an SDK update moves them, instead of the
 * preload silently doing nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { REPO_ROOT } from '../../config/load.js';

const require = createRequire(import.meta.url);

/** In a worker thread of a process started with (or without) the preload: is the hook still installed? */
function hookInstalled(preload: boolean): string {
  // A thread started from a file, as the SDK's workflow threads are (preloads run before a file
  // thread's script, but after an eval'd one's).
  const thread = join(mkdtempSync(join(tmpdir(), 'cascade-threads-')), 'thread.cjs');
  writeFileSync(
    thread,
    `const { globalHandlers } = require(${JSON.stringify(require.resolve('@temporalio/worker/lib/workflow/vm-shared.js'))});
     globalHandlers.install();
     require('node:worker_threads').parentPort.postMessage(String(globalHandlers.promiseHookInstalled));`,
  );
  const main = `
    const { Worker } = require('node:worker_threads');
    new Worker(${JSON.stringify(thread)}).on('message', (m) => { console.log(m); process.exit(0); });`;
  const args = ['--import', 'tsx', ...(preload ? ['--import', './workers/workflow-threads.mjs'] : []), '-e', main];
  const out = spawnSync(process.execPath, args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.trim();
}

test('the preload turns the stack-trace hook off in worker threads, and only with it', () => {
  assert.equal(hookInstalled(false), 'true');
  assert.equal(hookInstalled(true), 'false');
});
