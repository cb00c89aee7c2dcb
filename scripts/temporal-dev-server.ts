/**
 * Runs `temporal server start-dev` (the CLI that scripts/bootstrap.mjs installed) on 127.0.0.1
 * with Cascade's search attributes registered, and waits until it answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_FLAGS } from '../common/names.js';
import { REPO_ROOT } from '../config/load.js';

export interface DevServer {
  address: string;
  uiPort: number | null;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Latency settings for a single-host server (docs/benchmarks.md measures them). Its one
 * history shard reads its transfer queue at most 20 times a second by default, so back-to-back
 * requests wait for the next 50 ms read slot before their workflow or activity task is handed
 * to a worker; and with 4 task-queue partitions a task and a waiting poller can land on different
 * partitions. Together these halved the latency of a one-activity workflow here (p50 100 → 57 ms)
 * and cut the server's CPU per request by a quarter. The dev server gets them as flags, the
 * single-node PostgreSQL cluster (scripts/cluster/) in its dynamic config file.
 */
export const SINGLE_HOST_DYNAMIC_CONFIG: Record<string, number> = {
  'history.transferProcessorMaxPollRPS': 1000,
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
};

export function temporalCliPath(): string {
  const candidates = [process.env.TEMPORAL_CLI, join(REPO_ROOT, '.tools', 'temporal', 'bin', 'temporal'), join(REPO_ROOT, '.tools', 'go-bin', 'temporal')];
  const found = candidates.find((c): c is string => !!c && existsSync(c));
  if (!found) throw new Error('Temporal CLI not found: run `npm start` or `npm test` once (they install it into .tools/), or set TEMPORAL_CLI');
  return found;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export async function startTemporalDevServer(
  opts: { port?: number; uiPort?: number | null; dbFile?: string; logLevel?: string; uiCodecEndpoint?: string } = {},
): Promise<DevServer> {
  const port = opts.port ?? (await freePort());
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--log-level', opts.logLevel ?? 'error', '--namespace', 'default'];
  for (const flag of SEARCH_ATTRIBUTE_FLAGS) args.push('--search-attribute', flag);
  for (const [key, value] of Object.entries(SINGLE_HOST_DYNAMIC_CONFIG)) args.push('--dynamic-config-value', `${key}=${value}`);
  if (opts.uiPort === null || opts.uiPort === undefined) args.push('--headless');
  else args.push('--ui-port', String(opts.uiPort));
  // The UI decrypts payloads in the browser through Cascade's codec endpoint (server/codec.ts).
  if (opts.uiCodecEndpoint) args.push('--ui-codec-endpoint', opts.uiCodecEndpoint);
  if (opts.dbFile) {
    mkdirSync(dirname(opts.dbFile), { recursive: true });
    // Write-ahead log, synced at checkpoints: a committed write survives kill -9 of the server
    // (only an OS crash can lose the last ones), and the server no longer waits for an fsync per
    // transaction — on this machine's disk that tripled throughput at 32 concurrent requests.
    args.push('--db-filename', opts.dbFile, '--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal');
  }
  const child = spawn(temporalCliPath(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const address = `127.0.0.1:${port}`;
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    });

  await waitForTemporal({ child, port, what: 'Temporal dev server', stderr: () => stderr, stop });
  return { address, uiPort: opts.uiPort ?? null, process: child, stop };
}

/**
 * Resolves when the Temporal frontend on 127.0.0.1:`port` answers GetSystemInfo; stops the
 * server and throws (with its last output) when it exits first or does not answer in time.
 */
export async function waitForTemporal(opts: {
  child: ChildProcess;
  port: number;
  what: string;
  stderr(): string;
  stop(): Promise<void>;
  timeoutMs?: number;
}): Promise<void> {
  const { child, port, what } = opts;
  const address = `127.0.0.1:${port}`;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}): ${opts.stderr().trim()}`);
    try {
      // Probe the port first: a gRPC connection to a closed port keeps retrying in the background.
      await new Promise<void>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.destroy();
          resolve();
        });
        socket.once('error', reject);
      });
      const connection = await Connection.connect({ address, connectTimeout: 2000 });
      try {
        await connection.workflowService.getSystemInfo({});
      } finally {
        await connection.close();
      }
      return;
    } catch {
      if (Date.now() > deadline) {
        await opts.stop();
        throw new Error(`${what} did not answer on ${address} within ${timeoutMs / 1000} s: ${opts.stderr().trim()}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
