/**
 * The one argument parser of every command-line script (train, calibrate, bench:*, doc, farm):
 * node:util parseArgs in strict mode, plus `--help`/`-h` that prints the script's usage and exits 0,
 * and a wrong option, missing value or failed check that prints the problem and the usage to
 * stderr and exits 2 — never a stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Exits 2 with the problem and the usage on stderr (for checks parseArgs cannot express). */
export function exitWithUsage(usage: string, problem: string): never {
  process.stderr.write(`${problem}\n\n${usage.trim()}\n`);
  process.exit(2);
}

/**
 * Parses `argv` (default: the process's arguments) against `config`; `--help` is added to its
 * options. `usage` is the whole help text, starting with `usage: npm run ...`.
 */
export function parseCli<const T extends Omit<ParseArgsConfig, 'args' | 'strict'>>(
  usage: string,
  config: T,
  argv: string[] = process.argv.slice(2),
): ReturnType<typeof parseArgs<T>> {
  let parsed: ReturnType<typeof parseArgs<T>>;
  try {
    parsed = parseArgs({ ...config, args: argv, strict: true, options: { ...config.options, help: { type: 'boolean', short: 'h' } } }) as ReturnType<
      typeof parseArgs<T>
    >;
  } catch (err) {
    exitWithUsage(usage, (err as Error).message);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(`${usage.trim()}\n`);
    process.exit(0);
  }
  return parsed;
}
