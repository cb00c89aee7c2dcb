/**
 * A PostgreSQL server for a self-hosted Temporal: Debian's `postgresql` package (installed with
 * apt-get when missing), a data directory under the project, listening on a loopback port only.
 * PostgreSQL refuses to run as root, so as root its programs run as the `postgres` user the
 * package creates. Password authentication over TCP; the password is made at initdb time and
 * kept next to the data directory (mode 600).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { asUser, dropTo, keepTail, run, stopProcess } from './exec.js';

export const PG_USER = 'temporal';

export interface Postgres {
  port: number;
  user: string;
  password: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

const POSTGRES_ROOT = '/usr/lib/postgresql';

/** The bin directory of the newest installed PostgreSQL, or null. */
function findBinDir(): string | null {
  if (!existsSync(POSTGRES_ROOT)) return null;
  const versions = readdirSync(POSTGRES_ROOT)
    .filter((v) => existsSync(join(POSTGRES_ROOT, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(POSTGRES_ROOT, versions[0]!, 'bin') : null;
}

/** Installs Debian's postgresql when it is missing (root only); returns its bin directory. */
export async function ensurePostgres(say: (s: string) => void): Promise<string> {
  const found = findBinDir();
  if (found) return found;
  if (process.getuid?.() !== 0) throw new Error('PostgreSQL is not installed: run `apt-get install -y postgresql` as root (or run this script as root)');
  say('installing PostgreSQL (apt-get install postgresql) ...');
  await run('apt-get', ['update'], { inherit: true });
  await run('apt-get', ['install', '-y', '--no-install-recommends', 'postgresql'], {
    inherit: true,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  const installed = findBinDir();
  if (!installed) throw new Error(`apt-get installed postgresql but no initdb is under ${POSTGRES_ROOT}`);
  return installed;
}

/** Starts PostgreSQL on 127.0.0.1:`port` with its data in `dataDir` (initialised on first use). */
export async function startPostgres(opts: { binDir: string; dataDir: string; port: number; say: (s: string) => void }): Promise<Postgres> {
  const { binDir, dataDir, port, say } = opts;
  const user = process.getuid?.() === 0 ? 'postgres' : null;
  const passwordFile = `${dataDir}.password`;
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    say(`initialising a PostgreSQL data directory in ${dataDir} ...`);
    rmSync(dataDir, { recursive: true, force: true });
    // Its parents stay traversable (the postgres user must reach the directory); it is 700.
    mkdirSync(dirname(dataDir), { recursive: true });
    mkdirSync(dataDir, { mode: 0o700 });
    writeFileSync(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
    // initdb reads the password from a file the postgres user can read; it is removed right after.
    const initDir = mkdtempSync(join(tmpdir(), 'cascade-initdb-'));
    const initPw = join(initDir, 'pw');
    writeFileSync(initPw, readFileSync(passwordFile, 'utf8'), { mode: 0o600 });
    if (user) for (const path of [dataDir, initDir, initPw]) chownSync(path, ...ids(user));
    try {
      await asUser(user, join(binDir, 'initdb'), ['-D', dataDir, '-U', PG_USER, `--pwfile=${initPw}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C']);
    } finally {
      rmSync(initDir, { recursive: true, force: true });
    }
  }
  const password = readFileSync(passwordFile, 'utf8').trim();
  // Loopback TCP only; the Unix socket goes into the data directory (the default one, under
  // /var/run/postgresql, may not exist or be another server's). max_connections above the
  // default 100: Temporal's services each keep a pool of connections.
  const args = ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dataDir}`, '-c', 'max_connections=300'];
  const postgres = join(binDir, 'postgres');
  const child = user
    ? spawn('setpriv', dropTo(user, postgres, args), { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(postgres, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr = keepTail(child.stderr);
  // SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
  const stop = () => stopProcess(child, 'SIGINT', 30_000);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`PostgreSQL exited (${child.exitCode}): ${stderr().trim()}`);
    try {
      await run(join(binDir, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-q']);
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`PostgreSQL did not accept connections on 127.0.0.1:${port} within 60 s: ${stderr().trim()}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return { port, user: PG_USER, password, process: child, stop };
}

function ids(user: string): [number, number] {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no user ${user} (the postgresql package creates it)`);
  const [, , uid, gid] = line.split(':');
  return [Number(uid), Number(gid)];
}
