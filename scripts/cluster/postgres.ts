/**
 * `npm run cluster:postgres`: a self-hosted Temporal with PostgreSQL persistence on this machine,
 * for running Cascade (and bench:overhead) against something closer to production than the dev
 * server. Installs PostgreSQL (apt-get) and builds the Temporal server (Go module proxy) when
 * missing, keeps both servers' data under --data-dir, listens on loopback only, and stops both on
 * Ctrl-C / SIGTERM. The data survives restarts: the next start reuses it.
 *
 *   npm run cluster:postgres [-- --port 7233 --pg-port 55432 --data-dir .data/cluster --shards 4 --namespace default]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseCli } from '../../common/cli.js';
import { REPO_ROOT } from '../../config/load.js';
import { createPrinter } from '../lib/log-lines.js';
import { portsInUse } from '../lib/ports.js';
import { ensurePostgres, startPostgres, type Postgres } from './postgres-db.js';
import {
  clusterPorts,
  ensureSchema,
  ensureServerBinaries,
  prepareNamespace,
  startTemporalServer,
  TEMPORAL_SERVER_VERSION,
  type TemporalServer,
} from './temporal-server.js';

const USAGE = `usage: npm run cluster:postgres [-- --port 7233 --pg-port 55432 --data-dir .data/cluster --shards 4 --namespace default]

A self-hosted Temporal with PostgreSQL persistence on loopback; Ctrl-C stops both.`;

const { values: args } = parseCli(USAGE, {
  options: {
    port: { type: 'string', default: '7233' },
    'pg-port': { type: 'string', default: '55432' },
    'data-dir': { type: 'string', default: join(REPO_ROOT, '.data', 'cluster') },
    shards: { type: 'string', default: '4' },
    namespace: { type: 'string', default: 'default' },
  },
});

const print = createPrinter();
const say = (text: string) => print('cluster', text);

function portArg(name: 'port' | 'pg-port'): number {
  const port = Number(args[name]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`--${name}: "${args[name]}" is not a port number`);
  return port;
}

async function main(): Promise<void> {
  const port = portArg('port');
  const pgPort = portArg('pg-port');
  const shards = Number(args.shards);
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`--shards: "${args.shards}" is not a positive integer`);
  const dataDir = resolve(args['data-dir']);
  const ports = clusterPorts(port);
  const busy = await portsInUse([
    ...(['frontend', 'history', 'matching', 'worker'] as const).flatMap((service) => [
      { port: ports[service].grpc, what: `Temporal ${service} (from --port)` },
      { port: ports[service].membership, what: `Temporal ${service} membership (from --port)` },
    ]),
    { port: ports.http, what: 'Temporal frontend HTTP (from --port)' },
    { port: pgPort, what: 'PostgreSQL (--pg-port)' },
  ]);
  if (busy.length) throw new Error(`cannot start:\n  ${busy.join('\n  ')}`);
  mkdirSync(dataDir, { recursive: true });

  let pg: Postgres | null = null;
  let temporal: TemporalServer | null = null;
  let stopping = false;
  const stopAll = async (reason: string, code: number) => {
    if (stopping) return;
    stopping = true;
    say(reason);
    await temporal?.stop();
    await pg?.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll('stopping (SIGINT) ...', 0));
  process.on('SIGTERM', () => void stopAll('stopping (SIGTERM) ...', 0));

  try {
    const binDir = await ensurePostgres(say);
    await ensureServerBinaries(say);
    pg = await startPostgres({ binDir, dataDir: join(dataDir, 'postgres'), port: pgPort, say });
    say(`postgres pid ${pg.process.pid} ready on 127.0.0.1:${pgPort} (${binDir})`);
    pg.process.once('exit', (c, s) => void stopAll(`PostgreSQL exited (${s ?? `code ${c}`}); stopping`, 1));
    const stateDir = join(dataDir, 'temporal');
    mkdirSync(stateDir, { recursive: true });
    await ensureSchema(pg, stateDir, say);
    temporal = await startTemporalServer({ pg, port, shards, stateDir });
    temporal.process.once('exit', (c, s) => void stopAll(`the Temporal server exited (${s ?? `code ${c}`}; log: ${temporal!.logFile}); stopping`, 1));
    say(`temporal pid ${temporal.process.pid} ready (server ${TEMPORAL_SERVER_VERSION}, ${shards} history shards, log: ${temporal.logFile})`);
    const added = await prepareNamespace(temporal.address, args.namespace);
    if (added.length) say(`registered search attributes: ${added.join(', ')}`);
    // The benchmark reads the pids to count the servers' CPU per request (PostgreSQL's backends are children of its pid).
    const pids = { temporal: temporal.process.pid!, postgres: pg.process.pid! };
    writeFileSync(join(dataDir, 'cluster.json'), `${JSON.stringify({ address: temporal.address, namespace: args.namespace, pids }, null, 2)}\n`);
    say(`Temporal cluster ready: ${temporal.address} (namespace ${args.namespace}, PostgreSQL on 127.0.0.1:${pgPort}, data in ${dataDir})`);
    say('Point Cascade at it:');
    process.stdout.write(`TEMPORAL_ADDRESS=${temporal.address} CASCADE_TEMPORAL_EXTERNAL=1 npm start\n`);
    process.stdout.write(`npm run bench:overhead -- --temporal-address ${temporal.address} --watch-pids temporal=${pids.temporal},postgres=${pids.postgres}\n`);
  } catch (err) {
    await stopAll(`start-up failed: ${err instanceof Error ? err.message : String(err)}\nstopping what was started ...`, 1);
  }
}

void main();
