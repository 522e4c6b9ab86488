/**
 * Ed25519: sign with tweetnacl (works everywhere, including the browser and the
 * onnxruntime-web agent), verify with node:crypto (fast, and strict: it rejects
 * non-canonical S ≥ L signatures that tweetnacl accepts, RFC 8032 5.1.7).
 * Signatures are byte-identical between the two (a test checks it).
 */
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';

export interface KeyPair { publicKey: Uint8Array; secretKey: Uint8Array; seed: Uint8Array; keyid: string }

/** Key id: sha256 of the raw 32-byte public key, hex. */
export function keyIdOf(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex');
}

export function keyPairFromSeed(seed: Uint8Array): KeyPair {
  const kp = nacl.sign.keyPair.fromSeed(seed);
  return { publicKey: kp.publicKey, secretKey: kp.secretKey, seed: Uint8Array.from(seed), keyid: keyIdOf(kp.publicKey) };
}

export function generateKeyPair(): KeyPair {
  return keyPairFromSeed(nacl.randomBytes(32));
}

export function signBytes(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  return nacl.sign.detached(message, secretKey);
}

// SubjectPublicKeyInfo prefix for an Ed25519 key (RFC 8410 section 4).
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const keyCache = new Map<string, KeyObject>();

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const k = Buffer.from(publicKey).toString('hex');
  let ko = keyCache.get(k);
  if (!ko) {
    ko = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, Buffer.from(publicKey)]), format: 'der', type: 'spki' });
    if (keyCache.size > 1024) keyCache.clear();
    keyCache.set(k, ko);
  }
  return ko;
}

/** Strict verification; any malformed input is simply "does not verify". */
export function verifyBytes(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return cryptoVerify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

/** tweetnacl's verifier, for places without node:crypto and for cross-tests. */
export function verifyBytesNacl(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  return nacl.sign.detached.verify(message, signature, publicKey);
}
