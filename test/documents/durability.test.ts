/**
 * Document jobs survive crashes: kill -9 of the router worker mid-job, and a restart of
 * everything — Temporal dev server (same persistence file), router, pool workers and API. Every
 * Cascade process here is a child process; this file runs its own Temporal server so it can stop it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startTemporalDevServer, type DevServer } from '../../scripts/temporal-dev-server.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { documentsClient, documentText, finished, sleep } from './helpers.js';

const POOLS = ['cpu', 'gpu-a', 'api'];
const dbFile = join(mkdtempSync(join(tmpdir(), 'cascade-doc-durability-')), 'temporal.db');
let port: number;
let temporal: DevServer;
let stack: Stack;
let docs: ReturnType<typeof documentsClient>;

before(async () => {
  port = await freePort();
  temporal = await startTemporalDevServer({ port, dbFile });
  stack = await startStack({
    temporalAddress: temporal.address,
    routerProcess: true,
    apiProcess: true,
    poolProcesses: POOLS,
    configure: (raw) => {
      raw.server.forward_headers.push('x-farm-output-tokens');
      raw.documents.chunk_tokens = 64;
      raw.documents.overlap_tokens = 8;
      raw.documents.concurrency = 3;
      raw.policies.simulated.deadline_ms = 60_000;
      raw.breaker.failure_threshold = 1000;
      // A batch job can wait for a pool that is restarting rather than fail the chunk over.
      raw.retry.schedule_to_start_timeout_ms = 20_000;
    },
  });
  docs = documentsClient(stack);
});
after(async () => {
  await stack?.close();
  await temporal?.stop();
});

const slow = { 'x-farm-fault': 'slow-first-token', 'x-farm-fault-delay-ms': '400', 'x-farm-output-tokens': '10' };

describe('document jobs survive crashes', () => {
  it('kill -9 of the router worker mid-job: a new router finishes the job, no model call is paid twice', async () => {
    const id = await docs.start({ task: 'summarize', text: documentText(10, 'router-crash') }, slow);
    await docs.waitFor(id, (j) => j.chunks?.done >= 2, 30_000);
    process.kill(stack.child('router').pid!, 'SIGKILL');
    await sleep(300);
    await stack.startChild('router');
    const done = await docs.waitFor(id, finished, 90_000);
    assert.equal(done.status, 'completed', JSON.stringify(done).slice(0, 400));
    assert.equal(done.chunks.done, done.chunks.total);
    await docs.assertEachCallPaidOnce(id);
  });

  it('restart of everything, the Temporal dev server included: the job finishes from where it was', async () => {
    const id = await docs.start({ task: 'classify', labels: ['value', 'result'], text: documentText(12, 'restart') }, slow);
    const before = await docs.waitFor(id, (j) => j.chunks?.done >= 3, 30_000);
    assert.ok(before.chunks.done < before.chunks.total);
    // Calls the farm had completed just before the crash: Temporal had (or was about to have) their results.
    const completedBefore = await docs.completedCalls(id);
    await sleep(200); // so the workers have reported those to Temporal; calls completing now may be repeated
    for (const name of ['router', 'api', ...POOLS.map((p) => `pool:${p}`)]) process.kill(stack.child(name).pid!, 'SIGKILL');
    await temporal.stop();

    temporal = await startTemporalDevServer({ port, dbFile });
    for (const name of [...POOLS.map((p) => `pool:${p}`), 'router', 'api']) await stack.startChild(name);
    const done = await docs.waitFor(id, finished, 90_000);
    assert.equal(done.status, 'completed', JSON.stringify(done).slice(0, 400));
    assert.equal(done.chunks.done, done.chunks.total);
    assert.equal(done.result.items.length, done.chunks.total);
    assert.equal((await docs.callsByUnit(id)).size, done.chunks.total, 'no chunk had to be rerun');

    // A call that completed before the crash is never made again; one in flight at the instant of
    // the kill (answered by the farm, its result not yet recorded by Temporal) may be made once more.
    await docs.assertCompletedCallsNotRepeated(id, completedBefore, 6);
  });
});
