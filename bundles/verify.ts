/**
 * Verify bundles: the release signature over the exact manifest bytes first
 * (DSSE, threshold of distinct release keys from root.json), then the payload
 * against the signed hashes and lengths, chunk by chunk, and optionally the
 * decompressed model against the signed raw length and sha256. Files are
 * streamed; nothing the size of the model is held in memory.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { PAYLOAD_TYPES, type Envelope } from '@fleetcast/protocol/envelope.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { envelopeSteps } from '@fleetcast/signing/envelope.js';
import { settleAsync, settleSync, type Verifying } from '@fleetcast/signing/verify-steps.js';
import type { TrustedRoot } from '@fleetcast/signing/root.js';
import { ChunkHasher } from './chunks.js';
import { openBoundedDecompressor } from './compress.js';
import { bundleError, ioError } from './errors.js';
import { fileChunks } from './file-io.js';
import { decodeManifest, readBundleFile } from './read.js';

/** Bundle id: sha256 hex of the exact manifest payload bytes the release key signed (architecture.md "Trust"). */
export function bundleIdOf(manifestPayload: Uint8Array): string {
  return createHash('sha256').update(manifestPayload).digest('hex');
}

export interface VerifiedManifest {
  manifest: Manifest;
  bundleId: string;
  envelope: Envelope;
  /** The exact signed manifest payload bytes (bundleId is their sha256). */
  manifestBytes: Buffer;
}

/**
 * Check the release-role threshold over the envelope (signing/envelope.ts,
 * which throws SIGN_ERR_*), then parse the signed bytes, and only those.
 * Schema problems in a correctly signed manifest are BUNDLE_ERR_BAD_MANIFEST.
 */
export function verifyManifestEnvelope(env: Envelope, root: TrustedRoot): VerifiedManifest {
  return settleSync(manifestSteps(env, root));
}

/** verifyManifestEnvelope with the signatures checked off the event loop (the agent's swap path). */
export function verifyManifestEnvelopeAsync(env: Envelope, root: TrustedRoot): Promise<VerifiedManifest> {
  return settleAsync(manifestSteps(env, root));
}

/** The manifest check as verification steps (signing/verify-steps.ts), for callers that run it inside a larger check. */
export function* manifestSteps(env: Envelope, root: TrustedRoot): Verifying<VerifiedManifest> {
  if (!env || typeof env !== 'object' || typeof env.payload !== 'string' || !Array.isArray(env.signatures)) {
    throw bundleError('BUNDLE_ERR_BAD_MANIFEST', 'the manifest is not a signed envelope');
  }
  const manifestBytes = yield* envelopeSteps(env, PAYLOAD_TYPES.manifest, root.roles.release, 'bundle manifest');
  const manifest = decodeManifest(manifestBytes);
  return { manifest, bundleId: bundleIdOf(manifestBytes), envelope: env, manifestBytes };
}

/** Byte range [start, end) of chunk `index` in the compressed payload. */
export function chunkRange(manifest: Manifest, index: number): { start: number; end: number } {
  const { chunkSize, compressedLength, chunkHashes } = manifest.payload;
  if (!Number.isInteger(index) || index < 0 || index >= chunkHashes.length) {
    throw bundleError('BUNDLE_ERR_CHUNK_INDEX', `chunk ${index} requested; the bundle has chunks 0 to ${chunkHashes.length - 1}`, { index });
  }
  const start = index * chunkSize;
  return { start, end: Math.min(start + chunkSize, compressedLength) };
}

/** True when `bytes` are exactly chunk `index` of the signed payload (length and sha256). */
export function verifyChunk(manifest: Manifest, index: number, bytes: Uint8Array): boolean {
  if (!Number.isInteger(index) || index < 0 || index >= manifest.payload.chunkHashes.length) return false;
  const { start, end } = chunkRange(manifest, index);
  if (bytes.length !== end - start) return false;
  return createHash('sha256').update(bytes).digest('hex') === manifest.payload.chunkHashes[index];
}

/**
 * Stream the payload once: every chunk hash (stopping at the first bad chunk),
 * then the whole-payload hash; `tap` sees the bytes too (e.g. a decompressor).
 */
async function scanPayload(manifest: Manifest, path: string, offset: number, tap?: (b: Buffer) => Promise<void>): Promise<void> {
  const p = manifest.payload;
  const whole = createHash('sha256');
  let bad: { index: number; sha256: string } | undefined;
  const chunks = new ChunkHasher(p.chunkSize, (index, sha256) => { if (!bad && sha256 !== p.chunkHashes[index]) bad = { index, sha256 }; });
  // A tap failure (e.g. a decode error) is reported only if the bytes hash right:
  // bytes that are not the signed ones get the hash error, which names the chunk.
  let tapError: { e: unknown } | undefined;
  for await (const b of fileChunks(path, { start: offset, length: p.compressedLength })) {
    chunks.update(b);
    if (bad) break;
    whole.update(b);
    if (tap && !tapError) {
      try { await tap(b); } catch (e) { tapError = { e }; }
    }
  }
  chunks.finish();
  if (bad) {
    const { start, end } = chunkRange(manifest, bad.index);
    throw bundleError('BUNDLE_ERR_CHUNK_HASH', `chunk ${bad.index} (bytes ${start}-${end - 1} of the payload) has sha256 ${bad.sha256.slice(0, 16)}…, the manifest says ${p.chunkHashes[bad.index].slice(0, 16)}…`, { index: bad.index });
  }
  const sha = whole.digest('hex');
  if (sha !== p.compressedSha256) throw bundleError('BUNDLE_ERR_PAYLOAD_HASH', `sha256 ${sha.slice(0, 16)}…, the manifest says ${p.compressedSha256.slice(0, 16)}…`);
  if (tapError) throw tapError.e;
}

async function payloadSpan(manifest: Manifest, path: string, offset: number, length: number | undefined): Promise<void> {
  let size: number;
  try { size = (await stat(path)).size; } catch (e) { throw ioError('cannot read', path, e); }
  const want = manifest.payload.compressedLength;
  // A bare payload file (offset 0, no length) must be exactly the payload; inside an
  // archive the caller gives the member length, or at least the bytes must be there.
  const have = length ?? (offset === 0 ? size : Math.min(want, size - offset));
  if (length !== undefined && offset + length > size) throw bundleError('BUNDLE_ERR_PAYLOAD_LENGTH', `${path} ends ${offset + length - size} bytes before the payload does`);
  if (have !== want) throw bundleError('BUNDLE_ERR_PAYLOAD_LENGTH', `the payload is ${have} bytes, the manifest says ${want}`, { length: have, expected: want });
}

/**
 * Check a compressed payload on disk (a bare .zst file, or a member at `offset`
 * of `length` bytes inside a bundle): length, every chunk hash, whole sha256.
 */
export async function verifyPayloadFile(manifest: Manifest, path: string, offset = 0, length?: number): Promise<void> {
  await payloadSpan(manifest, path, offset, length);
  await scanPayload(manifest, path, offset);
}

/**
 * Verify a whole bundle file against a root: signatures, then payload, and with
 * `decompress: true` the decompressed model (raw length and sha256), in one pass
 * over the file with output hashed and dropped.
 */
export async function verifyBundleFile(path: string, root: TrustedRoot, opts: { decompress?: boolean } = {}): Promise<VerifiedManifest & { rawChecked: boolean }> {
  const file = await readBundleFile(path);
  const verified = verifyManifestEnvelope(file.envelope, root);
  const { manifest } = verified;
  await payloadSpan(manifest, path, file.payloadOffset, file.payloadLength);
  if (!opts.decompress) {
    await scanPayload(manifest, path, file.payloadOffset);
    return { ...verified, rawChecked: false };
  }
  // One pass: the bytes that pass the chunk check are decoded as they are read,
  // with output bounded by the signed raw length, hashed and dropped.
  const dec = await openBoundedDecompressor({ maxRawBytes: manifest.payload.rawLength });
  let raw: { length: number; sha256: string };
  try {
    await scanPayload(manifest, path, file.payloadOffset, (b) => dec.write(b));
    raw = await dec.end();
  } catch (e) {
    dec.destroy();
    throw e;
  }
  if (raw.length !== manifest.payload.rawLength) throw bundleError('BUNDLE_ERR_RAW_SIZE', `the model decompresses to ${raw.length} bytes, the manifest says ${manifest.payload.rawLength}`);
  if (raw.sha256 !== manifest.payload.rawSha256) throw bundleError('BUNDLE_ERR_RAW_HASH', `sha256 ${raw.sha256.slice(0, 16)}…, the manifest says ${manifest.payload.rawSha256.slice(0, 16)}…`);
  return { ...verified, rawChecked: true };
}
