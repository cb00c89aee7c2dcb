/**
 * The workflow bundle (webpack over workflows/index.ts). Built once per process and reused by
 * every router worker it starts; workflow code may import only deterministic modules.
 */
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';

let bundle: Promise<WorkflowBundleWithSourceMap> | null = null;

export function workflowBundle(logger?: Logger): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)),
    logger: logger
      ? {
          log: () => {},
          trace: () => {},
          debug: () => {},
          info: () => {},
          warn: (m, meta) => logger.warn(meta ?? {}, m),
          error: (m, meta) => logger.error(meta ?? {}, m),
        }
      : undefined,
  });
  return bundle;
}
