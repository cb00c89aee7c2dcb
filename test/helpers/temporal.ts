/**
 * The Temporal server for tests: the one `npm test` started (CASCADE_TEST_TEMPORAL_ADDRESS), or
 * one started for this test file when a file is run on its own.
 */
import { startTemporalDevServer, type DevServer } from '../../scripts/temporal-dev-server.js';

let local: Promise<DevServer> | null = null;

export async function testTemporalAddress(): Promise<string> {
  const shared = process.env.CASCADE_TEST_TEMPORAL_ADDRESS;
  if (shared) return shared;
  local ??= startTemporalDevServer();
  return (await local).address;
}

/** Stops the server this file started, if it started one. */
export async function releaseTestTemporal(): Promise<void> {
  if (!local) return;
  const server = await local;
  local = null;
  await server.stop();
}
