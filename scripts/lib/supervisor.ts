/**
 * The child processes of `npm start`: each is `node --import tsx <script>.ts` in its own process
 * group (`node .build/<script>.js` when npm start itself runs compiled, see scripts/build.mjs) (so a terminal's Ctrl-C reaches only `npm start`, which then stops them in order), with its
 * output prefixed by a short name. A child is ready when it prints its ready line; one that dies
 * during start-up fails the start with its last lines of output; one that dies later is reported
 * and, if it is stateless (workers, API), started again at once — after a growing backoff only
 * when it keeps dying right after start-up (a crash loop).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { REPO_ROOT } from '../../config/load.js';
import { BUILD_DIR, RUNNING_COMPILED } from '../../common/paths.js';
import { eachLine, formatLogLine, type Printer } from './log-lines.js';

export interface ChildSpec {
  /** Short name: the output prefix and the name in every message (`pool:cpu`, `router`, `api`). */
  name: string;
  /** Script and arguments, run as `node --import tsx <args>` in the repository root. */
  args: string[];
  /** Plain JavaScript modules loaded first (`--import`), in this process and each of its worker threads. */
  preload?: string[];
  env?: NodeJS.ProcessEnv;
  /** True for the (raw, unformatted) line that says the child is ready. */
  isReadyLine(line: string): boolean;
  /** Started again when it dies after start-up. */
  restart: boolean;
  /** Called when it exits after start-up, before any restart. */
  onExit?(): void;
  /** Sees every raw line (e.g. the farm's `farm pool <name> ready <url>`). */
  onLine?(line: string): void;
}

export class StartupError extends Error {
  override name = 'StartupError';
}

const START_TIMEOUT_MS = 120_000;
const STOP_GRACE_MS = 5_000;
const BACKOFF_MS = { first: 1_000, max: 30_000 };
/**
 * A child that dies within this long of being ready (or during a restart's start-up) crashed
 * "quickly". The first quick crash is restarted at once like any other; from the second in a row
 * on it is a crash loop, and the delay grows from BACKOFF_MS.first to BACKOFF_MS.max.
 */
const QUICK_CRASH_MS = 10_000;
const TAIL_LINES = 15;

interface Running {
  spec: ChildSpec;
  child: ChildProcess;
  readyAt: number | null;
}

export class Supervisor {
  private readonly running = new Map<string, Running>();
  /** Quick crashes in a row, by child name. */
  private readonly quickCrashes = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopping = false;

  constructor(private readonly print: Printer) {}

  /** Pid of every child now running, by name. */
  pids(): Map<string, number> {
    return new Map([...this.running].map(([name, r]) => [name, r.child.pid!]));
  }

  /** Starts the child and resolves with its pid when it printed its ready line. */
  start(spec: ChildSpec): Promise<number> {
    const child = spawn(process.execPath, [...cpuProfileFlags(spec.name), ...nodeArgs(spec.args, spec.preload)], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const entry: Running = { spec, child, readyAt: null };
    this.running.set(spec.name, entry);
    const tail: string[] = [];

    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new StartupError(`${spec.name} was not ready within ${START_TIMEOUT_MS / 1000} s${describeTail(tail)}`));
        child.kill('SIGKILL');
      }, START_TIMEOUT_MS);
      const onLine = (line: string) => {
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        this.print(spec.name, formatLogLine(line));
        spec.onLine?.(line);
        if (entry.readyAt === null && spec.isReadyLine(line)) {
          entry.readyAt = Date.now();
          clearTimeout(timer);
          resolve(child.pid!);
        }
      };
      eachLine(child.stdout!, onLine);
      eachLine(child.stderr!, onLine);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new StartupError(`${spec.name} could not be started: ${err.message}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.running.get(spec.name)?.child === child) this.running.delete(spec.name);
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        if (entry.readyAt === null) {
          reject(new StartupError(`${spec.name} ${how} during start-up${describeTail(tail)}`));
          return;
        }
        spec.onExit?.();
        if (this.stopping) return;
        this.print('cascade', `${spec.name} (pid ${child.pid}) ${how}`);
        if (spec.restart) this.scheduleRestart(spec, Date.now() - entry.readyAt);
        else this.print('cascade', `${spec.name} is not restarted automatically; restart npm start to bring it back`);
      });
    });
  }

  private scheduleRestart(spec: ChildSpec, upMs: number): void {
    const quick = upMs < QUICK_CRASH_MS ? (this.quickCrashes.get(spec.name) ?? 0) + 1 : 0;
    this.quickCrashes.set(spec.name, quick);
    const delay = restartDelayMs(quick);
    this.print(
      'cascade',
      delay === 0 ? `restarting ${spec.name}` : `restarting ${spec.name} in ${delay / 1000} s (crash loop: ${quick} quick crashes in a row)`,
    );
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.stopping) return;
      this.start(spec).then(
        (pid) => this.print('cascade', `${spec.name} pid ${pid} ready (restarted)`),
        (err: Error) => {
          if (this.stopping) return;
          this.print('cascade', `restart failed: ${err.message}`);
          this.scheduleRestart(spec, 0);
        },
      );
    }, delay);
    this.timers.add(timer);
  }

  /** SIGTERM to every child, SIGKILL to those still running after a grace period; resolves when all exited. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await Promise.all([...this.running.values()].map(({ child }) => stopChild(child)));
  }

  /** Last resort when `npm start` itself exits abruptly: no child may outlive it. */
  killAllNow(): void {
    this.stopping = true;
    for (const { child } of this.running.values()) if (isAlive(child)) child.kill('SIGKILL');
  }
}

/** No delay unless the child keeps dying right after start-up; then 1 s, 2 s, 4 s, ... up to 30 s. */
export function restartDelayMs(quickCrashesInARow: number): number {
  if (quickCrashesInARow < 2) return 0;
  return Math.min(BACKOFF_MS.first * 2 ** (quickCrashesInARow - 2), BACKOFF_MS.max);
}

const isAlive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (!isAlive(child)) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Children run as their parent does: compiled JavaScript in .build/ (npm start) or TypeScript through tsx. */
function nodeArgs([script, ...rest]: string[], preload: string[] = []): string[] {
  const imports = preload.flatMap((p) => ['--import', pathToFileURL(join(REPO_ROOT, p)).href]);
  return RUNNING_COMPILED ? [...imports, join(BUILD_DIR, script!.replace(/\.ts$/, '.js')), ...rest] : ['--import', 'tsx', ...imports, script!, ...rest];
}

function describeTail(tail: string[]): string {
  return tail.length ? `; its last output:\n${tail.map((l) => `    ${formatLogLine(l)}`).join('\n')}` : ' (no output)';
}

/**
 * `CASCADE_CPU_PROFILE_DIR=<dir>`: every child writes V8 CPU profiles (`<dir>/<name>/*.cpuprofile`,
 * one per thread) when it exits, for Chrome DevTools or any .cpuprofile viewer. Node refuses
 * `--cpu-prof` in NODE_OPTIONS, so it is passed here. How docs/benchmarks.md profiled the workers.
 */
function cpuProfileFlags(name: string): string[] {
  const dir = process.env.CASCADE_CPU_PROFILE_DIR;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, name.replace(/[^A-Za-z0-9-]/g, '_'))}`] : [];
}
