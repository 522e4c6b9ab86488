/**
 * Ed25519. Verify with node:crypto (fast, and strict: it rejects non-canonical
 * S ≥ L signatures that tweetnacl accepts, RFC 8032 5.1.7). Sign with
 * node:crypto too where it exists (~40× faster than tweetnacl here, which
 * matters when the hub signs an assignment per device); tweetnacl signs where
 * there is no node:crypto (browser, onnxruntime-web agent). Ed25519 signing is
 * deterministic (RFC 8032 5.1.6), so both give the same bytes: a test checks it.
 */
import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { isSmallOrderKey } from './small-order.js';

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

// PKCS#8 prefix for an Ed25519 private key given by its 32-byte seed (RFC 8410 section 7).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const privateCache = new Map<string, KeyObject>();

function privateKeyObject(secretKey: Uint8Array): KeyObject {
  // tweetnacl's 64-byte secret key is seed || public key.
  const k = Buffer.from(secretKey.subarray(0, 32)).toString('hex');
  let ko = privateCache.get(k);
  if (!ko) {
    ko = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
    if (privateCache.size > 64) privateCache.clear();
    privateCache.set(k, ko);
  }
  return ko;
}

export function signBytes(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  return new Uint8Array(cryptoSign(null, message, privateKeyObject(secretKey)));
}

/** tweetnacl's signer: what a browser or onnxruntime-web agent uses; byte-identical to signBytes. */
export function signBytesNacl(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
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

/** What every verifier refuses before any curve arithmetic: wrong lengths, and small-order keys. */
function refusedOutright(publicKey: Uint8Array, signature: Uint8Array): boolean {
  // A small-order key verifies forged signatures for any message (signing/small-order.ts).
  return publicKey.length !== 32 || signature.length !== 64 || isSmallOrderKey(publicKey);
}

/** Strict verification; any malformed input is simply "does not verify". */
export function verifyBytes(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (refusedOutright(publicKey, signature)) return false;
  try {
    return cryptoVerify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

/**
 * verifyBytes on libuv's threadpool (node:crypto's callback form), for an event loop that must not
 * stop for it (the agent's). Same checks, same answers; never rejects.
 */
export function verifyBytesAsync(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  if (refusedOutright(publicKey, signature)) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      cryptoVerify(null, message, publicKeyObject(publicKey), signature, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}

/** tweetnacl's verifier, for places without node:crypto and for cross-tests. */
export function verifyBytesNacl(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (refusedOutright(publicKey, signature)) return false;
  return nacl.sign.detached.verify(message, signature, publicKey);
}
