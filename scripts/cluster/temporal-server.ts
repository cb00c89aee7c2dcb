/**
 * A self-hosted Temporal server on one machine with PostgreSQL persistence and visibility: the
 * server and temporal-sql-tool built from the Go module proxy (cached in .tools/), the schema
 * created (first start) or brought up to date, a single-node config on loopback ports, the
 * default namespace and Cascade's search attributes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import { stringify } from 'yaml';
import { REPO_ROOT } from '../../config/load.js';
import { ensureSearchAttributes } from '../lib/search-attributes.js';
import { SINGLE_HOST_DYNAMIC_CONFIG, waitForTemporal } from '../temporal-dev-server.js';
import { keepTail, run, stopProcess } from './exec.js';
import type { Postgres } from './postgres-db.js';

export const TEMPORAL_SERVER_VERSION = 'v1.32.2';
const MODULE = 'go.temporal.io/server';
const BIN_DIR = join(REPO_ROOT, '.tools', `temporal-server-${TEMPORAL_SERVER_VERSION.slice(1)}`);
/** `go install` names each binary after its package directory. */
export const SERVER_BIN = join(BIN_DIR, 'server');
export const SQL_TOOL_BIN = join(BIN_DIR, 'sql');
const DATABASES = { temporal: 'postgresql/v12/temporal', temporal_visibility: 'postgresql/v12/visibility' } as const;

/**
 * Every port the server listens on, from the frontend's: with 7233 it is Temporal's usual layout
 * (history 7234, matching 7235, worker 7239, membership 6933-6939, HTTP 7243). Membership ports
 * are stored in a PostgreSQL smallint, so they must stay below 32768.
 */
const SERVICE_OFFSET = { frontend: 0, history: 1, matching: 2, worker: 6 } as const;
const MEMBERSHIP_OFFSET = -300;
const HTTP_OFFSET = 10;

export function clusterPorts(frontend: number): Record<keyof typeof SERVICE_OFFSET, { grpc: number; membership: number }> & { http: number } {
  if (frontend + MEMBERSHIP_OFFSET < 1024 || frontend + SERVICE_OFFSET.worker + MEMBERSHIP_OFFSET > 32767)
    throw new Error(
      `--port ${frontend}: the frontend port must be between ${1024 - MEMBERSHIP_OFFSET} and ${32767 - SERVICE_OFFSET.worker - MEMBERSHIP_OFFSET} (membership ports are ${MEMBERSHIP_OFFSET} from it and must fit a smallint)`,
    );
  const service = (offset: number) => ({ grpc: frontend + offset, membership: frontend + offset + MEMBERSHIP_OFFSET });
  return {
    frontend: service(SERVICE_OFFSET.frontend),
    history: service(SERVICE_OFFSET.history),
    matching: service(SERVICE_OFFSET.matching),
    worker: service(SERVICE_OFFSET.worker),
    http: frontend + HTTP_OFFSET,
  };
}

export interface TemporalServer {
  address: string;
  process: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * Builds the server and temporal-sql-tool once. The module declares a newer Go than some
 * machines have: GOTOOLCHAIN=auto lets `go` fetch that toolchain (itself a module on the proxy).
 * The build is CPU-heavy: one compile at a time, at low priority, so a shared machine stays usable.
 */
export async function ensureServerBinaries(say: (s: string) => void): Promise<void> {
  if (existsSync(SERVER_BIN) && existsSync(SQL_TOOL_BIN)) return;
  say(
    `building the Temporal server ${TEMPORAL_SERVER_VERSION} and temporal-sql-tool from the Go module proxy into ${BIN_DIR} (once; ~15-30 min on 2 cores) ...`,
  );
  mkdirSync(BIN_DIR, { recursive: true });
  const env = { ...process.env, GOBIN: BIN_DIR, GOTOOLCHAIN: 'auto', GOFLAGS: '-mod=mod', GOMAXPROCS: '1' };
  await run('nice', ['-n', '15', 'go', 'install', `${MODULE}/cmd/server@${TEMPORAL_SERVER_VERSION}`, `${MODULE}/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`], {
    env,
    inherit: true,
  }).catch((err: Error) => {
    throw new Error(`could not build the Temporal server (is Go installed? \`apt-get install golang\` or https://go.dev/dl): ${err.message}`);
  });
}

/** Creates both databases and their schema on first use; later starts only apply newer schema versions. */
export async function ensureSchema(pg: Postgres, stateDir: string, say: (s: string) => void): Promise<void> {
  const connect = ['--plugin', 'postgres12', '--ep', '127.0.0.1', '-p', String(pg.port), '-u', pg.user, '--pw', pg.password];
  for (const [db, schema] of Object.entries(DATABASES)) {
    const marker = join(stateDir, `${db}.created`);
    if (!existsSync(marker)) {
      say(`creating database ${db} and its schema (${schema}) ...`);
      await run(SQL_TOOL_BIN, [...connect, '--db', db, 'create-database']);
      await run(SQL_TOOL_BIN, [...connect, '--db', db, 'setup-schema', '-v', '0.0']);
      writeFileSync(marker, `${new Date().toISOString()}\n`);
    }
    await run(SQL_TOOL_BIN, [...connect, '--db', db, 'update-schema', '--schema-name', schema]);
  }
}

/** The server's config: one node, every service on loopback, persistence and visibility on PostgreSQL. */
function writeConfig(opts: { pg: Postgres; port: number; shards: number; stateDir: string }): { configFile: string; logFile: string } {
  const { pg, port, shards, stateDir } = opts;
  const datastore = (databaseName: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `127.0.0.1:${pg.port}`,
      connectProtocol: 'tcp',
      user: pg.user,
      password: pg.password,
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const ports = clusterPorts(port);
  const rpc = (service: keyof typeof SERVICE_OFFSET) => ({
    rpc: { grpcPort: ports[service].grpc, membershipPort: ports[service].membership, bindOnLocalHost: true },
  });
  const logFile = join(stateDir, 'server.log');
  const dynamicConfigFile = join(stateDir, 'dynamicconfig.yaml');
  writeFileSync(
    dynamicConfigFile,
    stringify(Object.fromEntries(Object.entries(SINGLE_HOST_DYNAMIC_CONFIG).map(([key, value]) => [key, [{ value, constraints: {} }]]))),
  );
  const config = {
    log: { stdout: false, level: 'warn', outputFile: logFile },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: shards,
      datastores: { 'postgres-default': datastore('temporal', 20), 'postgres-visibility': datastore('temporal_visibility', 10) },
    },
    global: { membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' } },
    services: {
      frontend: { rpc: { ...rpc('frontend').rpc, httpPort: ports.http } },
      history: rpc('history'),
      matching: rpc('matching'),
      worker: rpc('worker'),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: { active: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: `127.0.0.1:${port}` } },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
  };
  const configFile = join(stateDir, 'config.yaml');
  writeFileSync(configFile, stringify(config), { mode: 0o600 }); // it holds the database password
  return { configFile, logFile };
}

export async function startTemporalServer(opts: { pg: Postgres; port: number; shards: number; stateDir: string }): Promise<TemporalServer> {
  mkdirSync(opts.stateDir, { recursive: true });
  const { configFile, logFile } = writeConfig(opts);
  const child = spawn(SERVER_BIN, ['--config-file', configFile, '--allow-no-auth', 'start'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr = keepTail(child.stderr);
  const stop = () => stopProcess(child, 'SIGTERM', 15_000);
  await waitForTemporal({ child, port: opts.port, what: `Temporal server (log: ${logFile})`, stderr, stop, timeoutMs: 120_000 });
  return { address: `127.0.0.1:${opts.port}`, process: child, logFile, stop };
}

/**
 * Registers the namespace (once) and Cascade's search attributes. A new namespace reaches the
 * frontend's cache some seconds later, so the attributes are retried until it has.
 */
export async function prepareNamespace(address: string, namespace: string): Promise<string[]> {
  const connection = await Connection.connect({ address });
  try {
    await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('3 days') }).catch((err: { code?: number }) => {
      if (err.code !== 6) throw err; // ALREADY_EXISTS: registered on an earlier start
    });
  } finally {
    await connection.close();
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await ensureSearchAttributes(address, namespace);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
