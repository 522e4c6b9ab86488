/**
 * The verifiers that run on libuv's threadpool (the agent's assignment,
 * manifest and checkpoint checks) refuse exactly what the synchronous ones
 * refuse: one table of bad signatures through both.
 */
import { describe, expect, it } from 'vitest';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { signCheckpoint, verifyCheckpoint, verifyCheckpointAsync } from '../../signing/checkpoint.js';
import { generateKeyPair, keyPairFromSeed, signBytesNacl, verifyBytes, verifyBytesAsync } from '../../signing/ed25519.js';
import { signEnvelope, verifyForRole, verifyForRoleAsync } from '../../signing/envelope.js';
import type { TrustedRoot } from '../../signing/root.js';

// Ed25519 order L (RFC 8032 5.1): adding it to S gives a malleable signature.
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

function malleable(sig: Uint8Array): Buffer {
  let s = 0n;
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i]);
  s += L;
  const out = Buffer.from(sig);
  for (let i = 0; i < 32; i++) { out[32 + i] = Number(s & 0xffn); s >>= 8n; }
  return out;
}

const kp = keyPairFromSeed(Buffer.alloc(32, 9));
const other = generateKeyPair();
const msg = Buffer.from('the bytes that were signed');
const sig = Buffer.from(signBytesNacl(kp.secretKey, msg));
const identity = Buffer.alloc(32); identity[0] = 1; // small order: verifies (R = identity, S = 0) for any message
const highBit = Buffer.from(identity); highBit[31] |= 0x80;
const forged = Buffer.concat([identity, Buffer.alloc(32)]);
const flip = (b: Buffer, i: number) => { const c = Buffer.from(b); c[i] ^= 1; return c; };

const TABLE: { name: string; key: Uint8Array; message: Uint8Array; signature: Uint8Array; valid: boolean }[] = [
  { name: 'a good signature', key: kp.publicKey, message: msg, signature: sig, valid: true },
  { name: 'a flipped bit in R', key: kp.publicKey, message: msg, signature: flip(sig, 5), valid: false },
  { name: 'a flipped bit in S', key: kp.publicKey, message: msg, signature: flip(sig, 40), valid: false },
  { name: 'another message', key: kp.publicKey, message: flip(msg, 0), signature: sig, valid: false },
  { name: 'another key', key: other.publicKey, message: msg, signature: sig, valid: false },
  { name: 'malleable S + L', key: kp.publicKey, message: msg, signature: malleable(sig), valid: false },
  { name: 'small-order key with the forgery', key: identity, message: msg, signature: forged, valid: false },
  { name: 'small-order key, high bit set', key: highBit, message: msg, signature: forged, valid: false },
  { name: 'a 31-byte key', key: kp.publicKey.subarray(0, 31), message: msg, signature: sig, valid: false },
  { name: 'a 33-byte key', key: Buffer.concat([kp.publicKey, Buffer.alloc(1)]), message: msg, signature: sig, valid: false },
  { name: 'a 63-byte signature', key: kp.publicKey, message: msg, signature: sig.subarray(0, 63), valid: false },
  { name: 'a 65-byte signature', key: kp.publicKey, message: msg, signature: Buffer.concat([sig, Buffer.alloc(1)]), valid: false },
  { name: 'an empty signature', key: kp.publicKey, message: msg, signature: Buffer.alloc(0), valid: false },
  { name: 'a key that is no curve point', key: Buffer.alloc(32, 0xff), message: msg, signature: sig, valid: false },
];

describe('verifyBytesAsync', () => {
  it.each(TABLE)('$name: the same answer as verifyBytes', async ({ key, message, signature, valid }) => {
    expect(verifyBytes(key, message, signature)).toBe(valid);
    const pending = verifyBytesAsync(key, message, signature);
    expect(pending).toBeInstanceOf(Promise);
    await expect(pending).resolves.toBe(valid);
  });
});

/** The thrown code, or "ok". */
const codeOf = (f: () => unknown) => { try { f(); return 'ok'; } catch (e) { return (e as { code: string }).code; } };
const codeOfAsync = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code: string }) => e.code);

describe('verifyForRoleAsync', () => {
  const a = generateKeyPair(); const b = generateKeyPair(); const c = generateKeyPair();
  const root = { roles: { release: { keys: new Map([[a.keyid, a.publicKey], [b.keyid, b.publicKey]]), threshold: 2 } } } as unknown as TrustedRoot;
  const payload = Buffer.from('{"hello":"world"}');
  const both = signEnvelope(PAYLOAD_TYPES.manifest, payload, [a, b]);
  const once = signEnvelope(PAYLOAD_TYPES.manifest, payload, [a]);
  const cases = {
    'two trusted keys': { env: both, code: 'ok' },
    'one key twice': { env: { ...once, signatures: [once.signatures[0], once.signatures[0]] }, code: 'SIGN_ERR_THRESHOLD' },
    'an unknown key': { env: signEnvelope(PAYLOAD_TYPES.manifest, payload, [c]), code: 'SIGN_ERR_UNKNOWN_KEY' },
    'another payload type': { env: signEnvelope(PAYLOAD_TYPES.root, payload, [a, b]), code: 'SIGN_ERR_WRONG_TYPE' },
    'a changed payload': { env: { ...both, payload: Buffer.from('{"hello":"World"}').toString('base64') }, code: 'SIGN_ERR_BAD_SIGNATURE' },
    'one good, one malleable': { env: { ...both, signatures: [both.signatures[0], { ...both.signatures[1], sig: malleable(Buffer.from(both.signatures[1].sig, 'base64')).toString('base64') }] }, code: 'SIGN_ERR_THRESHOLD' },
  };
  it.each(Object.entries(cases))('%s: the same outcome as verifyForRole', async (_, { env, code }) => {
    expect(codeOf(() => verifyForRole(root, 'release', env, PAYLOAD_TYPES.manifest, 'm'))).toBe(code);
    expect(await codeOfAsync(verifyForRoleAsync(root, 'release', env, PAYLOAD_TYPES.manifest, 'm'))).toBe(code);
    if (code === 'ok') expect((await verifyForRoleAsync(root, 'release', env, PAYLOAD_TYPES.manifest, 'm')).equals(payload)).toBe(true);
  });
});

describe('verifyCheckpointAsync', () => {
  const log = generateKeyPair();
  const origin = 'fleetcast.test/log';
  const good = signCheckpoint({ origin, size: 42, rootHash: Buffer.alloc(32, 3) }, { name: 'hub', keyPair: log });
  const verifiers = [{ name: 'hub', publicKey: log.publicKey }];
  const cases = {
    'a good checkpoint': { text: good, code: 'ok' },
    'a changed size': { text: good.replace('\n42\n', '\n43\n'), code: 'SIGN_ERR_CHECKPOINT_SIGNATURE' },
    'another log': { text: signCheckpoint({ origin: 'elsewhere', size: 42, rootHash: Buffer.alloc(32, 3) }, { name: 'hub', keyPair: log }), code: 'SIGN_ERR_CHECKPOINT_ORIGIN' },
    'an untrusted signer': { text: signCheckpoint({ origin, size: 42, rootHash: Buffer.alloc(32, 3) }, { name: 'hub', keyPair: generateKeyPair() }), code: 'SIGN_ERR_CHECKPOINT_UNTRUSTED' },
    'not a checkpoint': { text: 'hello\n', code: 'SIGN_ERR_CHECKPOINT_FORMAT' },
  };
  it.each(Object.entries(cases))('%s: the same outcome as verifyCheckpoint', async (_, { text, code }) => {
    expect(codeOf(() => verifyCheckpoint(text, verifiers, { origin }))).toBe(code);
    expect(await codeOfAsync(verifyCheckpointAsync(text, verifiers, { origin }))).toBe(code);
    if (code === 'ok') expect((await verifyCheckpointAsync(text, verifiers, { origin })).size).toBe(42);
  });
});
