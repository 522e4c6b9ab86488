/**
 * Read a bundle (docs/architecture.md "Bundle file"): a ustar archive with
 * exactly two members, `manifest.json` (the release-signed DSSE envelope) then
 * `model.onnx.zst`. Reading parses the manifest but verifies nothing; the
 * payload of a file is located (offset, length), never loaded.
 */
import { open } from 'node:fs/promises';
import { parseEnvelope, PAYLOAD_TYPES, type Envelope } from '@fleetcast/protocol/envelope.js';
import { isFleetcastError } from '@fleetcast/protocol/errors.js';
import { parseManifest, type Manifest } from '@fleetcast/protocol/manifest.js';
import { expectedChunkCount } from './chunks.js';
import { bundleError, ioError } from './errors.js';
import { BLOCK, paddingFor, parseTarHeader, type TarEntry } from './tar.js';

export const MANIFEST_MEMBER = 'manifest.json';
export const PAYLOAD_MEMBER = 'model.onnx.zst';
/** Far above any real manifest (a 1 GB model at 256 KiB chunks needs ~300 KB). */
export const MAX_MANIFEST_BYTES = 32 * 1024 * 1024;

export interface BundleHead { envelope: Envelope; manifest: Manifest; manifestBytes: Buffer }

function badManifest(e: unknown, what: string): never {
  const detail = isFleetcastError(e) || e instanceof Error ? e.message : String(e);
  throw bundleError('BUNDLE_ERR_BAD_MANIFEST', `${what}: ${detail}`);
}

/**
 * Parse the exact signed manifest bytes and check what the schema cannot:
 * the chunk list must cover the payload exactly.
 */
export function decodeManifest(bytes: Uint8Array): Manifest {
  let value: unknown;
  try { value = JSON.parse(Buffer.from(bytes).toString('utf8')); } catch (e) { badManifest(e, 'the manifest payload is not JSON'); }
  let m: Manifest;
  try { m = parseManifest(value); } catch (e) { badManifest(e, 'manifest'); }
  const want = expectedChunkCount(m.payload.compressedLength, m.payload.chunkSize);
  if (m.payload.chunkHashes.length !== want) {
    throw bundleError('BUNDLE_ERR_BAD_MANIFEST', `manifest lists ${m.payload.chunkHashes.length} chunk hashes; ${m.payload.compressedLength} bytes in chunks of ${m.payload.chunkSize} need ${want}`);
  }
  return m;
}

/** Decode the `manifest.json` member: envelope JSON → exact payload bytes → manifest. */
export function decodeManifestMember(bytes: Uint8Array): BundleHead {
  let raw: unknown;
  try { raw = JSON.parse(Buffer.from(bytes).toString('utf8')); } catch (e) { badManifest(e, `${MANIFEST_MEMBER} is not JSON`); }
  let envelope: Envelope;
  try { envelope = parseEnvelope(raw); } catch (e) { badManifest(e, `${MANIFEST_MEMBER} is not a signed envelope`); }
  if (envelope.payloadType !== PAYLOAD_TYPES.manifest) throw bundleError('BUNDLE_ERR_BAD_MANIFEST', `${MANIFEST_MEMBER} has payload type ${envelope.payloadType}, expected ${PAYLOAD_TYPES.manifest}`);
  const manifestBytes = Buffer.from(envelope.payload, 'base64');
  return { envelope, manifest: decodeManifest(manifestBytes), manifestBytes };
}

function manifestEntry(h: Buffer, fileSize: number): TarEntry {
  if (fileSize < BLOCK) throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `the file is ${fileSize} bytes, shorter than one tar header`);
  const e = parseTarHeader(h, 0);
  if (!e) throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', 'the archive is empty');
  if (e.name !== MANIFEST_MEMBER || e.type !== '0') throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `the first member is ${JSON.stringify(e.name)}, expected ${MANIFEST_MEMBER}`);
  if (e.size > MAX_MANIFEST_BYTES) throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `${MANIFEST_MEMBER} is ${e.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
  if (e.dataOffset + e.size > fileSize) throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `the file ends inside ${MANIFEST_MEMBER} (truncated)`);
  return e;
}

function payloadEntry(h: Buffer, at: number, fileSize: number): TarEntry {
  if (at + BLOCK > fileSize) throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `no ${PAYLOAD_MEMBER} member after ${MANIFEST_MEMBER} (truncated?)`);
  const e = parseTarHeader(h, at);
  if (!e || e.name !== PAYLOAD_MEMBER || e.type !== '0') throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `the second member is ${e ? JSON.stringify(e.name) : 'missing'}, expected ${PAYLOAD_MEMBER}`);
  // A download cut short: say so in terms of the payload, which is what the agent re-fetches.
  if (e.dataOffset + e.size > fileSize) {
    throw bundleError('BUNDLE_ERR_PAYLOAD_LENGTH', `the file is truncated: ${PAYLOAD_MEMBER} should have ${e.size} bytes, only ${Math.max(0, fileSize - e.dataOffset)} are present`);
  }
  return e;
}

/** After the two members only end-of-archive zero blocks (or nothing) may follow. */
function checkTail(tail: Buffer, at: number): void {
  if (tail.every((b) => b === 0)) return;
  let name = 'data';
  try { name = tail.length === BLOCK ? `member ${JSON.stringify(parseTarHeader(tail, at)?.name)}` : name; } catch { /* not a header: plain trailing data */ }
  throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `unexpected ${name} at byte ${at} after ${PAYLOAD_MEMBER}; a bundle has exactly two members`);
}

export async function readBundleFile(path: string): Promise<BundleHead & { payloadOffset: number; payloadLength: number }> {
  let fh;
  try { fh = await open(path, 'r'); } catch (e) { throw ioError('cannot open', path, e); }
  try {
    const read = async (at: number, n: number) => {
      const b = Buffer.alloc(n);
      const { bytesRead } = await fh.read(b, 0, n, at);
      return b.subarray(0, bytesRead);
    };
    const size = (await fh.stat()).size;
    const m = manifestEntry(await read(0, BLOCK), size);
    const head = decodeManifestMember(await read(m.dataOffset, m.size));
    const at = m.dataOffset + m.size + paddingFor(m.size);
    const p = payloadEntry(await read(at, BLOCK), at, size);
    const end = p.dataOffset + p.size + paddingFor(p.size);
    checkTail(await read(end, BLOCK), end);
    return { ...head, payloadOffset: p.dataOffset, payloadLength: p.size };
  } catch (e) {
    if (isFleetcastError(e)) throw e;
    throw ioError('cannot read', path, e);
  } finally {
    await fh.close();
  }
}

export function readBundleBuffer(buf: Buffer): BundleHead & { payload: Buffer } {
  const read = (at: number, n: number) => buf.subarray(at, at + n);
  const m = manifestEntry(read(0, BLOCK), buf.length);
  const head = decodeManifestMember(read(m.dataOffset, m.size));
  const at = m.dataOffset + m.size + paddingFor(m.size);
  const p = payloadEntry(read(at, BLOCK), at, buf.length);
  const end = p.dataOffset + p.size + paddingFor(p.size);
  checkTail(read(end, BLOCK), end);
  return { ...head, payload: buf.subarray(p.dataOffset, p.dataOffset + p.size) };
}
