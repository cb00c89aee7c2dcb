#!/usr/bin/env node
/**
 * Compiles the TypeScript that `npm start` runs into .build/ (same layout, one .js per .ts), so its
 * processes run plain JavaScript: no tsx loader thread and esbuild helper process in each of them
 * (docs/benchmarks.md). A transpile with esbuild, the compiler tsx uses, not a type-check
 * (`npm test` runs tsc). Then bundles the workflow code once (.build/workflow-bundle.js), so router
 * workers load it instead of running webpack each. Runs on every `npm start` (its own process, so
 * none of this stays in memory), so .build/ is never stale. Plain JavaScript: runs before tsx could.
 *
 *   node scripts/build.mjs          (npm run build)
 */
import { readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** What the stack's processes import; tests and benchmarks keep running through tsx. */
const SOURCES = ['common', 'config', 'farm', 'workflows', 'activities', 'evaluators', 'workers', 'server', 'scripts'];
const BUILD_DIR = join(root, '.build');
// Built beside it and swapped in at the end: a running stack's restarted children never see half a build.
const staging = join(root, `.build-${process.pid}`);

function tsFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const started = Date.now();
try {
  const esbuild = await import('esbuild');
  const entryPoints = SOURCES.flatMap((dir) => tsFiles(join(root, dir)));
  await esbuild.build({ entryPoints, outdir: staging, outbase: root, format: 'esm', platform: 'node', target: 'node20', logLevel: 'error' });
  await esbuild.stop();

  const { bundleWorkflowCode } = await import('@temporalio/worker');
  const say = (level) => (message) => process.stderr.write(`[build] ${level}: ${message}\n`);
  const quiet = () => {};
  const { code } = await bundleWorkflowCode({
    workflowsPath: join(root, 'workflows', 'index.ts'),
    // As workers/bundle.ts: failures raised in workflows carry their message in encrypted attributes.
    failureConverterPath: join(root, 'common', 'failure-converter.ts'),
    logger: { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: say('warning'), error: say('error') },
  });
  writeFileSync(join(staging, 'workflow-bundle.js'), code);
  rmSync(BUILD_DIR, { recursive: true, force: true });
  renameSync(staging, BUILD_DIR);
  process.stderr.write(`[build] ${entryPoints.length} files and the workflow bundle into .build/ in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
} finally {
  rmSync(staging, { recursive: true, force: true });
}
