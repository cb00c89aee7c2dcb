/**
 * Preloaded (`node --import`) into the processes that run workflows under `npm start` (router and
 * API processes), so it also runs first in each of their worker threads, among them the Temporal
 * SDK's workflow threads. There it turns off the SDK's per-promise stack-trace hook: for every
 * promise a workflow creates, the hook captures an Error stack and maps each frame through the
 * bundle's source map, so that the UI's "Stack Trace" query can show where a running workflow
 * waits. Measured on the cascade workflow: ~4 ms CPU per request, about an eighth of Cascade's own
 * (docs/benchmarks.md, "The durable path"). A cascade waits for milliseconds-long model calls
 * whose progress its current details already show; `temporal.workflow_stack_traces: true` keeps
 * the hook. Failures keep their source-mapped stack traces either way.
 *
 * It reaches into the SDK's internals (lib/workflow/vm-shared.js), checked against 1.24 by
 * test/unit/workflow-threads.test.ts; if an SDK update moves them, this does nothing. Plain
 * JavaScript: worker threads load it before any TypeScript loader is registered in them.
 */
import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';

if (!isMainThread) {
  try {
    const require = createRequire(import.meta.url);
    const { globalHandlers } = require('@temporalio/worker/lib/workflow/vm-shared.js');
    if (globalHandlers && typeof globalHandlers.setPromiseHook === 'function') globalHandlers.setPromiseHook = () => {};
  } catch {
    // Another SDK layout: keep its default.
  }
}
