/**
 * What a fetch checks about the payload bytes it receives, in one pass over
 * bytes already in memory (no second read of the staged file):
 *
 * - every chunk against its signed length and sha256. The release signature
 *   covers manifest.payload.chunkSize, compressedLength and chunkHashes, and
 *   bundles/read.ts refuses a manifest whose chunkHashes count is not
 *   ceil(compressedLength / chunkSize); so chunks that all match are, by
 *   sha256 collision resistance, exactly the signed payload, and their
 *   concatenation needs no further authentication.
 * - the whole payload against manifest.payload.compressedSha256, hashed in
 *   index order as chunks arrive. Given the point above this only checks that
 *   the signed manifest agrees with itself (chunk list vs payload hash): a
 *   release signer that signed chunk hashes of other bytes is still refused
 *   with AGENT_ERR_PAYLOAD_HASH before anything is decompressed.
 *
 * The decompressed model is checked against rawSha256 later, whoever
 * decompresses it; that check also covers bytes damaged on disk after they
 * were verified here.
 *
 * A seam: the simulator runs many agents on one CPU and shares the hashing of
 * byte-identical chunks (simulator/shared-verify.ts); a device uses
 * `payloadCheck` below.
 */
import { createHash } from 'node:crypto';
import { verifyChunk } from '@fleetcast/bundles/verify.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { agentError } from './errors.js';

export interface PayloadCheck {
  /** True when `bytes` are exactly chunk `index` of the signed payload (length and sha256). */
  chunk(index: number, bytes: Uint8Array): boolean;
  /** Chunk `index`, already verified, in index order 0, 1, 2, … (the whole-payload hash). */
  append(index: number, bytes: Uint8Array): void;
  /** Hex sha256 of everything appended; called once, after the last chunk. */
  digest(): string;
}

export type PayloadCheckFactory = (manifest: Manifest) => PayloadCheck;

export const payloadCheck: PayloadCheckFactory = (manifest) => {
  const whole = createHash('sha256');
  return {
    chunk: (index, bytes) => verifyChunk(manifest, index, bytes),
    append: (_index, bytes) => { whole.update(bytes); },
    digest: () => whole.digest('hex'),
  };
};

/**
 * The verifying phase: every staged chunk matched its signed hash, so the bytes are
 * the signed payload; this compares the manifest's own payload hash with the sha256
 * taken over them during the fetch, so a manifest whose chunk list and payload hash
 * disagree is refused (AGENT_ERR_PAYLOAD_HASH) before anything is decompressed.
 */
export function checkPayloadHash(manifest: Manifest, sha256: string): void {
  const want = manifest.payload.compressedSha256;
  if (sha256 !== want) {
    throw agentError('AGENT_ERR_PAYLOAD_HASH', `the staged payload (every chunk matching its signed hash) has sha256 ${sha256.slice(0, 16)}…, the manifest says ${want.slice(0, 16)}…`);
  }
}
