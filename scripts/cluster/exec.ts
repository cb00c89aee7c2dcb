/** Runs a command to completion for the cluster scripts: its output is kept for the error message. */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Show the command's output as it runs (long installs and builds), instead of keeping it. */
  inherit?: boolean;
}

/** Resolves with stdout; rejects naming the command and its last output when it fails. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', opts.inherit ? 'inherit' : 'pipe', opts.inherit ? 'inherit' : 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve(stdout);
      else
        reject(
          new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`})${stderr || stdout ? `:\n${(stderr || stdout).trim().slice(-2000)}` : ''}`),
        );
    });
  });
}

/** As `run`, but as another user when this process is root (PostgreSQL refuses to run as root). */
export function asUser(user: string | null, cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return user ? run('setpriv', dropTo(user, cmd, args), opts) : run(cmd, args, opts);
}

/** setpriv arguments that exec `cmd` as `user` (setpriv execs: the pid stays the command's). */
export function dropTo(user: string, cmd: string, args: string[]): string[] {
  return [`--reuid=${user}`, `--regid=${user}`, '--init-groups', '--', cmd, ...args];
}

/** Sends `signal`, then SIGKILL after `graceMs`; resolves when the process has exited. */
export function stopProcess(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
    setTimeout(() => child.kill('SIGKILL'), graceMs).unref();
  });
}

/** The last few thousand characters a stream printed (for the message when a server dies). */
export function keepTail(stream: Readable | null): () => string {
  let tail = '';
  stream?.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-4000)));
  return () => tail;
}
