/**
 * Worker of the overhead benchmark's Temporal floor (see workflow.ts): `workflow` runs the floor
 * workflow (the router worker's role), `activity` runs its no-op activity (a pool worker's role).
 * Prints `ready` on stdout once polling.
 *
 *   node --import tsx bench/floor/worker.ts workflow|activity <temporal address>
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { installRuntime } from '../../workers/runtime.js';

export const FLOOR_WORKFLOW_QUEUE = 'cascade-bench-floor';
export const FLOOR_ACTIVITY_QUEUE = 'cascade-bench-floor-activity';

const activities = {
  async echo(text: string): Promise<string> {
    return text;
  },
};
export type FloorActivities = typeof activities;

async function run(role: string, address: string): Promise<void> {
  installRuntime();
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create(
    role === 'workflow'
      ? { connection, taskQueue: FLOOR_WORKFLOW_QUEUE, workflowsPath: fileURLToPath(new URL('./workflow.ts', import.meta.url)) }
      : { connection, taskQueue: FLOOR_ACTIVITY_QUEUE, activities },
  );
  const running = worker.run();
  process.stdout.write('ready\n');
  await running;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [role, address] = process.argv.slice(2);
  if ((role !== 'workflow' && role !== 'activity') || !address) {
    console.error('usage: node --import tsx bench/floor/worker.ts workflow|activity <temporal address>');
    process.exit(2);
  }
  run(role, address).catch((err) => {
    console.error(`floor worker failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
