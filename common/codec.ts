/**
 * Encrypted Temporal history: a payload codec that seals every payload (workflow inputs and
 * results, activity inputs and results, memos, summaries, failure messages) with AES-256-GCM
 * before it leaves the process, so prompts and answers are never plaintext in Temporal's
 * database. The key id travels in the payload's metadata, so keys rotate: new payloads are
 * sealed with the current key, old ones open with whichever key sealed them.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, ValueError, type Payload, type PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';

const { temporal } = proto;

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface Keyring {
  /** The key new payloads are sealed with. */
  current: string;
  keys: ReadonlyMap<string, Buffer>;
}

const text = (bytes: Uint8Array | null | undefined) => (bytes ? Buffer.from(bytes).toString('utf8') : undefined);

export class EncryptionCodec implements PayloadCodec {
  constructor(private readonly keyring: Keyring) {
    if (!keyring.keys.has(keyring.current)) throw new ValueError(`the current encryption key "${keyring.current}" is not in the keyring`);
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.seal(payload));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.open(payload));
  }

  private seal(payload: Payload): Payload {
    const keyId = this.keyring.current;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keyring.keys.get(keyId)!, iv);
    // The key id is authenticated too: a payload relabelled with another key id does not open.
    cipher.setAAD(Buffer.from(keyId));
    // The whole payload (its metadata included) is sealed, so even its encoding is not visible.
    const plain = temporal.api.common.v1.Payload.encode(payload).finish();
    const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return { metadata: { [METADATA_ENCODING_KEY]: Buffer.from(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: Buffer.from(keyId) }, data: sealed };
  }

  private open(payload: Payload): Payload {
    // Payloads written before encryption was turned on (or by a process without it) pass through.
    if (text(payload.metadata?.[METADATA_ENCODING_KEY]) !== ENCRYPTED_ENCODING) return payload;
    const keyId = text(payload.metadata?.[KEY_ID_METADATA]);
    if (!keyId) throw new ValueError('an encrypted payload has no encryption-key-id');
    const key = this.keyring.keys.get(keyId);
    if (!key) throw new ValueError(`a payload is encrypted with key "${keyId}", which is not in the keyring (${[...this.keyring.keys.keys()].join(', ')})`);
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) throw new ValueError('an encrypted payload is too short');
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(keyId));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new ValueError(`a payload encrypted with key "${keyId}" failed authentication (wrong key or tampered data)`);
    }
    return temporal.api.common.v1.Payload.decode(plain);
  }
}
