/** Connections to Temporal for workers and clients, from the config's address and namespace. */
import { NativeConnection } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import type { CascadeConfig } from '../config/load.js';

export async function connectWorker(config: CascadeConfig): Promise<NativeConnection> {
  return NativeConnection.connect({ address: config.raw.temporal.address });
}

export async function connectClient(config: CascadeConfig): Promise<Client> {
  const connection = await Connection.connect({ address: config.raw.temporal.address });
  return new Client({ connection, namespace: config.raw.temporal.namespace });
}
