/** Checks, before anything starts, that the ports `npm start` will listen on are free. */
import { createServer } from 'node:net';

export interface WantedPort {
  port: number;
  /** What would listen there, for the message (e.g. "the API (PORT)"). */
  what: string;
}

function isFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** One line per port already in use, naming it and what needed it; empty when all are free. */
export async function portsInUse(wanted: WantedPort[], host = '127.0.0.1'): Promise<string[]> {
  const problems: string[] = [];
  const seen = new Map<number, string>();
  for (const { port, what } of wanted) {
    if (port === 0) continue;
    const other = seen.get(port);
    if (other) problems.push(`port ${port} is configured twice: ${other} and ${what}`);
    seen.set(port, what);
    if (!(await isFree(port, host))) problems.push(`port ${port} (${what}) is already in use on ${host}`);
  }
  return problems;
}
