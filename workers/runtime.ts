/**
 * The Temporal SDK's process-wide runtime, with its logs sent to pino at `warn` and above (the
 * SDK's own info lines about worker states are noise in a router's logs).
 */
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import type { Logger } from 'pino';

let installed = false;

/** SDK warnings about what is intended here: a pool worker serves activities only. */
const EXPECTED = new Set(['No workflows registered, not polling for workflow tasks']);

export function installRuntime(logger?: Logger, level: LogLevel = 'WARN'): void {
  if (installed) return;
  installed = true;
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => {
      if (!logger || EXPECTED.has(entry.message)) return;
      const meta = { ...entry.meta, sdk: true };
      if (entry.level === 'ERROR') logger.error(meta, entry.message);
      else logger.warn(meta, entry.message);
    }),
  });
}
