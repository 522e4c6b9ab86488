import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { PAYLOAD_TYPES, pae } from '../../protocol/envelope.js';
import { generateKeyPair, keyPairFromSeed, signBytes, signBytesNacl, verifyBytes, verifyBytesNacl } from '../../signing/ed25519.js';
import { signEnvelope, verifyEnvelopeWith } from '../../signing/envelope.js';
import { decodeKeyFile, readKeyFile } from '../../signing/keys.js';
import { loadRootText } from '../../signing/root.js';
import { cleanupTempDirs, makeKeys } from '../helpers/env.js';

afterAll(cleanupTempDirs);

// Ed25519 order L (RFC 8032 5.1): adding it to S gives a malleable signature.
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

describe('ed25519', () => {
  it('tweetnacl and node:crypto produce byte-identical signatures and agree on verification', () => {
    for (let i = 0; i < 20; i++) {
      const kp = generateKeyPair();
      const msg = Buffer.from(`message ${i} ${'x'.repeat(i * 7)}`);
      const naclSig = signBytesNacl(kp.secretKey, msg);
      // PKCS#8 wrapping of the same 32-byte seed for node:crypto (RFC 8410).
      const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(kp.seed)]);
      const nodeSig = cryptoSign(null, msg, createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
      expect(Buffer.from(naclSig).equals(nodeSig)).toBe(true);
      expect(Buffer.from(signBytes(kp.secretKey, msg)).equals(nodeSig)).toBe(true);
      expect(verifyBytes(kp.publicKey, msg, naclSig)).toBe(true);
      expect(verifyBytesNacl(kp.publicKey, msg, nodeSig)).toBe(true);
      const bad = Buffer.from(naclSig); bad[5] ^= 1;
      expect(verifyBytes(kp.publicKey, msg, bad)).toBe(false);
      expect(verifyBytesNacl(kp.publicKey, msg, bad)).toBe(false);
    }
  });

  it('node:crypto rejects the malleable S+L signature that tweetnacl accepts', () => {
    const kp = keyPairFromSeed(Buffer.alloc(32, 7));
    const msg = Buffer.from('malleable');
    const sig = Buffer.from(signBytesNacl(kp.secretKey, msg));
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i]);
    s += L; // S < L < 2^253, so S + L still fits the 32-byte field
    const mall = Buffer.from(sig);
    for (let i = 0; i < 32; i++) { mall[32 + i] = Number(s & 0xffn); s >>= 8n; }
    expect(mall.equals(sig)).toBe(false);
    expect(verifyBytesNacl(kp.publicKey, msg, mall)).toBe(true);
    expect(verifyBytes(kp.publicKey, msg, mall)).toBe(false);
  });
});

describe('keys and root', () => {
  it('keys init writes root.json and 0600 private keys that load back', () => {
    const k = makeKeys();
    for (const p of Object.values(k.keyPaths)) {
      expect(statSync(p).mode & 0o777).toBe(0o600);
      expect(readKeyFile(p).keyid).toMatch(/^[0-9a-f]{64}$/);
    }
    const root = loadRootText(readFileSync(k.rootPath, 'utf8'));
    expect(root.version).toBe(1);
    expect([...root.roles.release.keys.keys()]).toEqual([k.keys.release.keyid]);
    expect([...root.roles.hub.keys.keys()]).toEqual([k.keys.hub.keyid]);
    expect(() => makeKeys(k.dir)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_KEYS_EXIST' }));
  });

  it('a key file whose seed does not match its public key is refused', () => {
    const k = makeKeys();
    const text = readFileSync(k.keyPaths.release, 'utf8').replace(/"seed": "[^"]+"/, `"seed": "${Buffer.alloc(32, 1).toString('base64')}"`);
    expect(() => decodeKeyFile(text)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_BAD_KEY_FILE' }));
  });

  it('a root with a flipped payload byte or an expired date is refused', () => {
    const k = makeKeys();
    const env = JSON.parse(readFileSync(k.rootPath, 'utf8'));
    const p = Buffer.from(env.payload, 'base64'); p[p.length - 3] ^= 1;
    expect(() => loadRootText(JSON.stringify({ ...env, payload: p.toString('base64') }))).toThrow(expect.objectContaining({ code: expect.stringMatching(/SIGN_ERR_(BAD_ROOT|BAD_SIGNATURE)/) }));
    expect(() => loadRootText(JSON.stringify(env), { now: Date.now() + 400 * 86_400_000 })).toThrow(expect.objectContaining({ code: 'SIGN_ERR_ROOT_EXPIRED' }));
  });
});

describe('envelopes', () => {
  const a = generateKeyPair(); const b = generateKeyPair(); const c = generateKeyPair();
  const set = { keys: new Map([[a.keyid, a.publicKey], [b.keyid, b.publicKey]]), threshold: 2 };
  const payload = Buffer.from('{"hello":"world"}');

  it('signs PAE of the exact bytes (DSSE v1)', () => {
    const env = signEnvelope(PAYLOAD_TYPES.manifest, payload, [a]);
    expect(verifyBytes(a.publicKey, pae(PAYLOAD_TYPES.manifest, payload), Buffer.from(env.signatures[0].sig, 'base64'))).toBe(true);
    expect(pae('t', Buffer.from('ab')).toString()).toBe('DSSEv1 1 t 2 ab');
  });

  it('meets a 2-of-2 threshold only with two distinct trusted keys', () => {
    expect(verifyEnvelopeWith(signEnvelope(PAYLOAD_TYPES.manifest, payload, [a, b]), PAYLOAD_TYPES.manifest, set, 'm').equals(payload)).toBe(true);
    const once = signEnvelope(PAYLOAD_TYPES.manifest, payload, [a]);
    const twice = { ...once, signatures: [once.signatures[0], once.signatures[0]] };
    expect(() => verifyEnvelopeWith(twice, PAYLOAD_TYPES.manifest, set, 'm')).toThrow(expect.objectContaining({ code: 'SIGN_ERR_THRESHOLD' }));
    expect(() => verifyEnvelopeWith(signEnvelope(PAYLOAD_TYPES.manifest, payload, [c]), PAYLOAD_TYPES.manifest, set, 'm')).toThrow(expect.objectContaining({ code: 'SIGN_ERR_UNKNOWN_KEY' }));
    expect(() => verifyEnvelopeWith(signEnvelope(PAYLOAD_TYPES.root, payload, [a, b]), PAYLOAD_TYPES.manifest, set, 'm')).toThrow(expect.objectContaining({ code: 'SIGN_ERR_WRONG_TYPE' }));
    const tampered = { ...signEnvelope(PAYLOAD_TYPES.manifest, payload, [a, b]), payload: Buffer.from('{"hello":"World"}').toString('base64') };
    expect(() => verifyEnvelopeWith(tampered, PAYLOAD_TYPES.manifest, set, 'm')).toThrow(expect.objectContaining({ code: 'SIGN_ERR_BAD_SIGNATURE' }));
  });
});
