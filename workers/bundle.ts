/**
 * The workflow bundle (webpack over workflows/index.ts). Built once per process and reused by
 * every router worker it starts; workflow code may import only deterministic modules. Under
 * `npm start` it was built before any worker started (scripts/build.mjs), and the router only
 * loads it: webpack never runs, nor stays in memory, in a router process.
 */
import { bundleWorkflowCode, type WorkflowBundleOption } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PREBUILT_WORKFLOW_BUNDLE, REPO_ROOT, RUNNING_COMPILED } from '../common/paths.js';
import type { Logger } from 'pino';
import { FAILURE_CONVERTER_SOURCE } from './connection.js';

let bundle: Promise<WorkflowBundleOption> | null = null;

export function workflowBundle(logger?: Logger): Promise<WorkflowBundleOption> {
  if (RUNNING_COMPILED && existsSync(PREBUILT_WORKFLOW_BUNDLE)) return Promise.resolve({ codePath: PREBUILT_WORKFLOW_BUNDLE });
  bundle ??= bundleWorkflowCode({
    // The TypeScript source, also when this runs compiled: webpack bundles it as before.
    workflowsPath: join(REPO_ROOT, 'workflows', 'index.ts'),
    // Failures raised in workflows carry their message in encrypted attributes, as everywhere else.
    failureConverterPath: FAILURE_CONVERTER_SOURCE,
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
