import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { cpuMs } from '../../bench/lib/overhead-cpu.js';
import { comparePeers, type PathResult } from '../../bench/lib/overhead-report.js';
import { breakdown } from '../../bench/lib/overhead-profile.js';

const result = (path: string, concurrency: number, p50: number, rps: number): PathResult => ({
  path,
  concurrency,
  p50,
  rps,
  n: 10,
  errors: 0,
  p95: p50,
  p99: p50,
  mean: p50,
  cpu_ms_per_request: {},
});

describe('bench:overhead helpers', () => {
  it('compares each peer path with the cascade at the same concurrency, as added p50 over the direct call and as throughput', () => {
    const rows = [
      result('baseline', 1, 3, 200),
      result('cascade', 1, 63, 15),
      result('litellm-1w', 1, 15, 60),
      result('baseline', 32, 80, 345),
      result('cascade', 32, 1500, 20),
      result('litellm-1w', 32, 300, 100),
      result('litellm-2w', 32, 200, 160),
    ];
    const peers = comparePeers(rows, ['litellm-1w', 'litellm-2w']);
    assert.deepEqual(
      peers.map((p) => [p.concurrency, p.path, p.peer_p50_added_ms, p.cascade_p50_added_ms, p.added_p50_ratio, p.rps_ratio]),
      [
        [1, 'litellm-1w', 12, 60, 5, 4],
        [32, 'litellm-1w', 220, 1420, 1420 / 220, 5],
        [32, 'litellm-2w', 120, 1420, 1420 / 120, 8],
      ],
    );
    // A peer path with no cascade row at its concurrency (e.g. --c32 0) is left out, not compared with NaN.
    assert.deepEqual(comparePeers([result('baseline', 1, 3, 200), result('litellm-1w', 1, 15, 60)], ['litellm-1w']), []);
  });

  it("counts a process's children in its CPU time, while they run and after they exited", async () => {
    // A shell whose only work is a child that spins until it has used 1 s of CPU (not of wall
    // time: on a busy machine that takes longer), then the shell execs `sleep` (same pid, the
    // child's time now in its reaped-children counters). The shell's own time is a few ms.
    const spin = 'while (process.cpuUsage().user < 1e6);';
    const shell = spawn('sh', ['-c', `${process.execPath} -e "${spin}"; exec sleep 60`], { stdio: 'ignore' });
    const pid = shell.pid!;
    const comm = () => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const until = async (what: string, done: () => boolean) => {
      const deadline = Date.now() + 60_000;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await until('the child to use 200 ms of CPU', () => cpuMs(pid) >= 200);
      assert.equal(comm(), 'sh', 'read while the child was still running');
      await until('the child to exit', () => comm() === 'sleep');
      const after = cpuMs(pid);
      assert.ok(after >= 1000, `after the child exited: ${after} ms (expected ≥ 1000, its whole CPU time)`);
    } finally {
      shell.kill('SIGKILL');
      await once(shell, 'exit');
    }
    assert.ok(Number.isNaN(cpuMs(pid)), 'a process that is gone reads as NaN');
  });
});

describe('bench:overhead history breakdown', () => {
  const at = (ms: number) => ({ eventTime: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 } });
  const ev = (key: string, ms: number) => ({ ...at(ms), [key]: {} });
  const sample = { sentAt: 1_000_000, receivedAt: 1_000_050, error: null, workflowId: 'w', ms: 50 };

  it('splits a task-queue request into its two workflow tasks around the pool activity', () => {
    const events = [
      ev('workflowExecutionStartedEventAttributes', 1_000_005),
      ev('workflowTaskScheduledEventAttributes', 1_000_005),
      ev('workflowTaskStartedEventAttributes', 1_000_006),
      ev('workflowTaskCompletedEventAttributes', 1_000_010),
      ev('activityTaskScheduledEventAttributes', 1_000_010),
      ev('activityTaskStartedEventAttributes', 1_000_012),
      ev('activityTaskCompletedEventAttributes', 1_000_030),
      ev('workflowTaskScheduledEventAttributes', 1_000_030),
      ev('workflowTaskStartedEventAttributes', 1_000_031),
      ev('workflowTaskCompletedEventAttributes', 1_000_040),
      ev('workflowExecutionCompletedEventAttributes', 1_000_040),
    ];
    const b = breakdown(events, sample)!;
    assert.deepEqual(
      [b.client_to_started, b.wft1_dispatch, b.wft1_run, b.activity_dispatch, b.activity_run, b.wft2_dispatch, b.wft2_run, b.completed_to_client],
      [5, 1, 4, 2, 18, 1, 9, 10],
    );
  });

  it('reads a local-dispatch request as one workflow task with no activity segments', () => {
    const events = [
      ev('workflowExecutionStartedEventAttributes', 1_000_004),
      ev('workflowTaskScheduledEventAttributes', 1_000_004),
      ev('workflowTaskStartedEventAttributes', 1_000_004),
      ev('workflowTaskCompletedEventAttributes', 1_000_030),
      ev('workflowExecutionCompletedEventAttributes', 1_000_030),
    ];
    const b = breakdown(events, sample)!;
    assert.deepEqual([b.client_to_started, b.wft1_dispatch, b.wft1_run, b.activity_run, b.wft2_run, b.completed_to_client], [4, 0, 26, 0, 0, 20]);
  });
});
