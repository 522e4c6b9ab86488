/** Small-order Ed25519 keys verify a forged (R = identity, S = 0) signature for every message in both libraries; fleetcast refuses them. */
import nacl from 'tweetnacl';
import { createPublicKey, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyBytes, verifyBytesNacl, generateKeyPair, keyIdOf } from '../../signing/ed25519.js';
import { isSmallOrderKey } from '../../signing/small-order.js';
import { makeRoot } from '../../signing/root.js';
import { loadRoot } from '../../signing/root.js';
import { signEnvelope } from '../../signing/envelope.js';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';

const identity = Buffer.alloc(32); identity[0] = 1;
const forged = Buffer.concat([identity, Buffer.alloc(32)]);
const msg = Buffer.from('any message at all');

describe('small-order public keys', () => {
  it('the raw libraries accept the forgery (why the check exists)', () => {
    expect(nacl.sign.detached.verify(msg, forged, identity)).toBe(true);
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), identity]);
    expect(verify(null, msg, createPublicKey({ key: spki, format: 'der', type: 'spki' }), forged)).toBe(true);
  });

  it('verifyBytes and verifyBytesNacl refuse it; ordinary keys still verify', () => {
    expect(isSmallOrderKey(identity)).toBe(true);
    const highBit = Buffer.from(identity); highBit[31] |= 0x80;
    expect(isSmallOrderKey(highBit)).toBe(true);
    expect(verifyBytes(identity, msg, forged)).toBe(false);
    expect(verifyBytesNacl(identity, msg, forged)).toBe(false);
    const kp = generateKeyPair();
    expect(isSmallOrderKey(kp.publicKey)).toBe(false);
    expect(verifyBytes(kp.publicKey, msg, nacl.sign.detached(msg, kp.secretKey))).toBe(true);
  });

  it('a root listing a small-order key is refused', () => {
    const rootKey = generateKeyPair();
    const p = makeRoot({ version: 1, expires: Date.now() + 86_400_000, roles: { root: { keys: [rootKey.publicKey], threshold: 1 }, release: { keys: [rootKey.publicKey], threshold: 1 }, hub: { keys: [identity], threshold: 1 } } });
    expect(p.roles.hub.keyids).toEqual([keyIdOf(identity)]);
    const env = signEnvelope(PAYLOAD_TYPES.root, Buffer.from(JSON.stringify(p)), [rootKey]);
    expect(() => loadRoot(env)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_BAD_ROOT' }));
  });
});
