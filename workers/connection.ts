/** Connections to Temporal for workers and clients, from the config's address and namespace. */
import { NativeConnection } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { REPO_ROOT, RUNNING_COMPILED } from '../common/paths.js';
import { fileURLToPath } from 'node:url';
import type { CascadeConfig } from '../config/load.js';
import { EncryptionCodec } from '../common/codec.js';
import { loadKeyring } from '../common/encryption-keys.js';

export async function connectWorker(config: CascadeConfig): Promise<NativeConnection> {
  return NativeConnection.connect({ address: config.raw.temporal.address });
}

export async function connectClient(config: CascadeConfig): Promise<Client> {
  const connection = await Connection.connect({ address: config.raw.temporal.address });
  return new Client({ connection, namespace: config.raw.temporal.namespace, dataConverter: dataConverter(config) });
}

/** `encryption.key_file`, resolved against the config file's folder. */
export function keyFilePath(config: CascadeConfig): string {
  const file = config.raw.encryption.key_file;
  return isAbsolute(file) ? file : resolve(dirname(config.file), file);
}

/** The payload codec from the config's keys, or null when encryption is off. */
export function encryptionCodec(config: CascadeConfig, env: NodeJS.ProcessEnv = process.env): EncryptionCodec | null {
  const { enabled, keys_env } = config.raw.encryption;
  if (!enabled) return null;
  return new EncryptionCodec(loadKeyring({ file: keyFilePath(config), envVar: keys_env, env }).keyring);
}

/**
 * What every client and worker of Cascade encodes payloads with: the same codec on both sides,
 * and failure messages and stack traces moved into the (encrypted) payloads, since an error
 * message can quote a prompt. The failure converter is the same with encryption off, as the
 * workflow bundle has only one.
 */
export function dataConverter(config: CascadeConfig, env: NodeJS.ProcessEnv = process.env): DataConverter {
  const codec = encryptionCodec(config, env);
  return { payloadCodecs: codec ? [codec] : [], failureConverterPath: FAILURE_CONVERTER_PATH };
}

/** common/failure-converter, required by clients and workers: the .js beside this file when it runs compiled. */
export const FAILURE_CONVERTER_PATH = fileURLToPath(new URL(`../common/failure-converter.${RUNNING_COMPILED ? 'js' : 'ts'}`, import.meta.url));
/** Its TypeScript source, which webpack bundles into the workflow code (workers/bundle.ts, scripts/build.mjs). */
export const FAILURE_CONVERTER_SOURCE = join(REPO_ROOT, 'common', 'failure-converter.ts');
