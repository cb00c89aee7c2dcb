/**
 * The payload codec and its keys, without Temporal: sealing, key rotation, tampering, the key
 * file created once even when processes start together.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { EncryptionCodec, KEY_ID_METADATA } from '../../common/codec.js';
import { loadOrCreateKeyFile, newKeyEntry, parseKeyring } from '../../common/encryption-keys.js';
import { REPO_ROOT } from '../../config/load.js';

const secret = 'Janet’s ducks lay 16 eggs per day';
const payload = defaultPayloadConverter.toPayload({ messages: [{ role: 'user', content: secret }] });
const keyringOf = (...entries: string[]) => parseKeyring(entries.join('\n'), 'test');
const k1 = newKeyEntry().replace(/^[^:]+/, 'k1');
const k2 = newKeyEntry().replace(/^[^:]+/, 'k2');
const contains = (p: Payload, text: string) => Buffer.from(p.data!).includes(Buffer.from(text));

describe('the payload codec', () => {
  it('seals a payload so its text is not in it, with a fresh IV each time, and opens it again', async () => {
    const codec = new EncryptionCodec(keyringOf(k1));
    assert.ok(contains(payload, 'ducks lay'), 'control: the plain payload holds the text');
    const [a] = await codec.encode([payload]);
    const [b] = await codec.encode([payload]);
    assert.ok(!contains(a!, 'ducks lay'));
    assert.ok(!Buffer.from(a!.data!).equals(Buffer.from(b!.data!)), 'same payload, different ciphertext');
    assert.equal(Buffer.from(a!.metadata![KEY_ID_METADATA]!).toString(), 'k1');
    const [opened] = await codec.decode([a!]);
    assert.deepEqual(defaultPayloadConverter.fromPayload(opened!), { messages: [{ role: 'user', content: secret }] });
  });

  it('rotates: the new key seals, the old key still opens old payloads; a keyring without the key names it', async () => {
    const [old] = await new EncryptionCodec(keyringOf(k1)).encode([payload]);
    const rotated = new EncryptionCodec(keyringOf(k2, k1));
    const [fresh] = await rotated.encode([payload]);
    assert.equal(Buffer.from(fresh!.metadata![KEY_ID_METADATA]!).toString(), 'k2');
    for (const sealed of [old!, fresh!])
      assert.deepEqual(defaultPayloadConverter.fromPayload((await rotated.decode([sealed]))[0]!), { messages: [{ role: 'user', content: secret }] });
    await assert.rejects(new EncryptionCodec(keyringOf(k1)).decode([fresh!]), /encrypted with key "k2", which is not in the keyring \(k1\)/);
  });

  it('refuses tampered data and a payload relabelled with another key id', async () => {
    const codec = new EncryptionCodec(keyringOf(k2, k1));
    const [sealed] = await codec.encode([payload]);
    const flipped = Buffer.from(sealed!.data!);
    flipped[20]! ^= 1;
    await assert.rejects(codec.decode([{ ...sealed!, data: flipped }]), /failed authentication/);
    const relabelled = { ...sealed!, metadata: { ...sealed!.metadata, [KEY_ID_METADATA]: Buffer.from('k1') } };
    await assert.rejects(codec.decode([relabelled]), /key "k1" failed authentication/);
  });

  it('passes payloads that were never encrypted through unchanged', async () => {
    assert.deepEqual(await new EncryptionCodec(keyringOf(k1)).decode([payload]), [payload]);
  });
});

describe('encryption keys', () => {
  it('parses entries in order (the first seals) and names the bad entry without printing key material', () => {
    const ring = parseKeyring(`# comment\n${k2}\n${k1}\n`, 'KEYS');
    assert.equal(ring.current, 'k2');
    assert.deepEqual([...ring.keys.keys()], ['k2', 'k1']);
    assert.throws(() => parseKeyring('k1:c2hvcnQ=', 'KEYS'), /KEYS: key "k1" is 5 bytes, AES-256 needs 32/);
    assert.throws(() => parseKeyring(`${k1},nonsense`, 'KEYS'), /KEYS: entry 2 is not "<key id>:<base64 key>"/);
    assert.throws(() => parseKeyring(`${k1},${k1}`, 'KEYS'), /key id "k1" appears twice/);
    assert.throws(() => parseKeyring('# nothing', 'KEYS'), /KEYS: no encryption key/);
  });

  it('creates the key file once, readable by its owner only, even when processes start together', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cascade-keys-')), 'sub', 'encryption-keys');
    const script = `import { loadOrCreateKeyFile } from ${JSON.stringify(join(REPO_ROOT, 'common', 'encryption-keys.ts'))}; const r = loadOrCreateKeyFile(${JSON.stringify(file)}); console.log(r.keyring.current, r.created);`;
    const run = () => promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT });
    const outs = (await Promise.all([run(), run(), run(), run()])).map((o) => o.stdout.trim().split(' '));
    assert.equal(new Set(outs.map(([id]) => id)).size, 1, `one key for all: ${JSON.stringify(outs)}`);
    assert.equal(outs.filter(([, created]) => created === 'true').length, 1, 'exactly one process created it');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const again = loadOrCreateKeyFile(file);
    assert.equal(again.created, false);
    assert.equal(again.keyring.current, outs[0]![0]);
    assert.match(readFileSync(file, 'utf8'), /^# Cascade payload encryption keys/);
  });
});
