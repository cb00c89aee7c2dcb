/**
 * The repository root: the nearest folder above this module that holds package.json. The same
 * from the TypeScript sources and from the compiled copy in .build/ that `npm start` runs, so
 * config, models and data are found from either.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const REPO_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

/** Compiled JavaScript of the stack (scripts/build.mjs), run by `npm start`. */
export const BUILD_DIR = join(REPO_ROOT, '.build');
/** The workflow bundle scripts/build.mjs writes, so that no router worker runs webpack itself. */
export const PREBUILT_WORKFLOW_BUNDLE = join(BUILD_DIR, 'workflow-bundle.js');
/** True when this process runs the compiled copy in .build/ rather than TypeScript through tsx. */
export const RUNNING_COMPILED = fileURLToPath(import.meta.url).endsWith('.js');
