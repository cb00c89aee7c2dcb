/**
 * Readable output for `npm start`: every child's lines are prefixed with its short name, and pino
 * JSON lines are shortened to `time LEVEL message key=value ...` (other lines pass unchanged).
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

export function formatLogLine(line: string): string {
  if (!line.startsWith('{')) return line;
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof entry.level !== 'number') return line;
  // pid, hostname and the logger's name are already said by the prefix.
  const { level, time, msg, pid: _pid, hostname: _hostname, name: _name, ...rest } = entry;
  const at = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '';
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return [at, (LEVELS[level] ?? String(level)).padEnd(5), msg ?? '', fields].filter(Boolean).join(' ');
}

export interface Printer {
  (source: string, text: string): void;
  /** Makes the source column wide enough for these names (so it does not jump as children start). */
  widen(names: string[]): void;
}

/** Prints `source | text` lines. */
export function createPrinter(write: (s: string) => void = (s) => process.stdout.write(s)): Printer {
  let width = 8;
  const print = (source: string, text: string) => {
    width = Math.max(width, source.length);
    write(`${source.padEnd(width)} | ${text}\n`);
  };
  return Object.assign(print, { widen: (names: string[]) => (width = Math.max(width, ...names.map((n) => n.length))) });
}

/** Calls `onLine` for every line of a stream. */
export function eachLine(stream: Readable, onLine: (line: string) => void): void {
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', onLine);
}
