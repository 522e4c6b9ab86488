import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle } from '../../bundle-build/build.js';
import { ChunkHasher } from '../../bundles/chunks.js';
import { readBundleBuffer, readBundleFile } from '../../bundles/read.js';
import { tarBuffer } from '../../bundles/tar.js';
import { bundleIdOf, chunkRange, verifyBundleFile, verifyChunk, verifyManifestEnvelope, verifyPayloadFile } from '../../bundles/verify.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { PAYLOAD_TYPES, type Envelope } from '../../protocol/envelope.js';
import type { Manifest } from '../../protocol/manifest.js';
import { generateKeyPair, type KeyPair } from '../../signing/ed25519.js';
import { signEnvelope } from '../../signing/envelope.js';
import { loadRoot, loadRootText, makeRoot, type TrustedRoot } from '../../signing/root.js';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';

afterAll(cleanupTempDirs);

const code = (c: string) => expect.objectContaining({ code: c });

let keys: ReturnType<typeof makeKeys>;
let root: TrustedRoot;
let dir: string;
let good: string;
let goodBuf: Buffer;

/** Write a two-member bundle from parts, as an attacker or a broken tool might. */
function writeBundle(name: string, env: Envelope, payload: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, tarBuffer([{ name: 'manifest.json', data: Buffer.from(JSON.stringify(env)) }, { name: 'model.onnx.zst', data: payload }]));
  return p;
}

/** Re-sign a changed copy of the good manifest (with the real release key unless told). */
function resigned(name: string, change: (m: Manifest) => void, opts: { payload?: Buffer; keys?: KeyPair[] } = {}): string {
  const b = readBundleBuffer(goodBuf);
  const m = structuredClone(b.manifest);
  change(m);
  return writeBundle(name, signEnvelope(PAYLOAD_TYPES.manifest, Buffer.from(JSON.stringify(m)), opts.keys ?? [keys.keys.release]), opts.payload ?? b.payload);
}

function withByteFlipped(name: string, at: number): string {
  const b = Buffer.from(goodBuf);
  b[at] ^= 0x01;
  const p = join(dir, name);
  writeFileSync(p, b);
  return p;
}

beforeAll(async () => {
  keys = makeKeys();
  root = loadRootText(readFileSync(keys.rootPath, 'utf8'));
  dir = tempDir('fleetcast-bundles-verify-');
  // padFloats makes a payload of several chunks (incompressible weights).
  const b = await buildBundle({ model: buildMlp({ categorical: true, padFloats: 200_000 }), name: 'churn', version: 3, releaseKeys: [keys.keys.release], out: join(dir, 'good.fcb'), chunkSize: 64 * 1024 });
  good = b.path;
  goodBuf = readFileSync(good);
});

describe('verifyBundleFile on a good bundle', () => {
  it('accepts it, checking signatures, every chunk, the payload hash and the decompressed model', async () => {
    const v = await verifyBundleFile(good, root, { decompress: true });
    expect(v.rawChecked).toBe(true);
    expect(v.manifest.name).toBe('churn');
    expect(v.manifest.payload.chunkHashes.length).toBeGreaterThan(10);
    expect(v.bundleId).toBe(bundleIdOf(v.manifestBytes));
    const fast = await verifyBundleFile(good, root);
    expect(fast.rawChecked).toBe(false);
    expect(fast.bundleId).toBe(v.bundleId);
  });

  it('meets a 2-of-2 release threshold only when both keys signed', async () => {
    const second = generateKeyPair();
    const rootKey = keys.keys.root;
    const spec = { version: 1, expires: Date.now() + 86_400_000, roles: { root: { keys: [rootKey.publicKey], threshold: 1 }, release: { keys: [keys.keys.release.publicKey, second.publicKey], threshold: 2 }, hub: { keys: [keys.keys.hub.publicKey], threshold: 1 } } };
    const root2 = loadRoot(signEnvelope(PAYLOAD_TYPES.root, Buffer.from(JSON.stringify(makeRoot(spec))), [rootKey]));
    const both = await buildBundle({ model: buildMlp(), name: 'two', version: 1, releaseKeys: [keys.keys.release, second, second], out: join(dir, 'two.fcb') });
    expect(both.envelope.signatures).toHaveLength(2);
    await expect(verifyBundleFile(both.path, root2, { decompress: true })).resolves.toMatchObject({ rawChecked: true });
    await expect(verifyBundleFile(good, root2)).rejects.toThrow(code('SIGN_ERR_THRESHOLD'));
  });
});

describe('tampering and damage are refused with the right code', () => {
  it('a flipped byte in the payload: BUNDLE_ERR_CHUNK_HASH naming the chunk', async () => {
    const { payloadOffset } = await readBundleFile(good);
    const p = withByteFlipped('payload-flip.fcb', payloadOffset + 3 * 64 * 1024 + 17);
    await expect(verifyBundleFile(p, root)).rejects.toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_CHUNK_HASH', details: { index: 3 } }));
    await expect(verifyBundleFile(p, root, { decompress: true })).rejects.toThrow(code('BUNDLE_ERR_CHUNK_HASH'));
  });

  it('a changed byte in the signed manifest payload: SIGN_ERR_BAD_SIGNATURE', async () => {
    const b = readBundleBuffer(goodBuf);
    const bytes = Buffer.from(b.manifestBytes);
    const at = bytes.indexOf('"version":3') + '"version":'.length;
    bytes[at] = '4'.charCodeAt(0);
    const p = writeBundle('manifest-flip.fcb', { ...b.envelope, payload: bytes.toString('base64') }, b.payload);
    await expect(verifyBundleFile(p, root)).rejects.toThrow(code('SIGN_ERR_BAD_SIGNATURE'));
    // A raw byte flipped inside the manifest.json member is refused too, whatever it hits.
    const raw = withByteFlipped('manifest-raw-flip.fcb', 512 + 200);
    await expect(verifyBundleFile(raw, root)).rejects.toThrow(expect.objectContaining({ code: expect.stringMatching(/^(BUNDLE_ERR_BAD_MANIFEST|SIGN_ERR_BAD_SIGNATURE)$/) }));
  });

  it('a flipped bit in the signature: SIGN_ERR_BAD_SIGNATURE', async () => {
    const b = readBundleBuffer(goodBuf);
    const sig = Buffer.from(b.envelope.signatures[0].sig, 'base64');
    sig[10] ^= 0x80;
    const p = writeBundle('sig-flip.fcb', { ...b.envelope, signatures: [{ ...b.envelope.signatures[0], sig: sig.toString('base64') }] }, b.payload);
    await expect(verifyBundleFile(p, root)).rejects.toThrow(code('SIGN_ERR_BAD_SIGNATURE'));
  });

  it('a bundle signed by a key the root does not list: SIGN_ERR_UNKNOWN_KEY', async () => {
    const p = resigned('unknown-key.fcb', () => {}, { keys: [generateKeyPair()] });
    await expect(verifyBundleFile(p, root)).rejects.toThrow(code('SIGN_ERR_UNKNOWN_KEY'));
    // The hub key is trusted, but not for releases.
    const hubSigned = resigned('hub-key.fcb', () => {}, { keys: [keys.keys.hub] });
    await expect(verifyBundleFile(hubSigned, root)).rejects.toThrow(code('SIGN_ERR_UNKNOWN_KEY'));
  });

  it('a truncated file: BUNDLE_ERR_PAYLOAD_LENGTH inside the payload, BUNDLE_ERR_NOT_A_BUNDLE before it', async () => {
    const { payloadOffset } = await readBundleFile(good);
    const cut = (name: string, n: number) => { const p = join(dir, name); writeFileSync(p, goodBuf.subarray(0, n)); return p; };
    await expect(verifyBundleFile(cut('cut-payload.fcb', payloadOffset + 1000), root)).rejects.toThrow(code('BUNDLE_ERR_PAYLOAD_LENGTH'));
    await expect(verifyBundleFile(cut('cut-manifest.fcb', 700), root)).rejects.toThrow(code('BUNDLE_ERR_NOT_A_BUNDLE'));
    await expect(verifyBundleFile(cut('cut-header.fcb', 100), root)).rejects.toThrow(code('BUNDLE_ERR_NOT_A_BUNDLE'));
    await expect(verifyBundleFile(cut('empty.fcb', 0), root)).rejects.toThrow(code('BUNDLE_ERR_NOT_A_BUNDLE'));
  });

  it('not a tar at all (an ONNX file, random bytes) or a tar of other files: BUNDLE_ERR_NOT_A_BUNDLE', async () => {
    const onnx = join(dir, 'model.onnx');
    writeFileSync(onnx, buildMlp());
    await expect(verifyBundleFile(onnx, root)).rejects.toThrow(code('BUNDLE_ERR_NOT_A_BUNDLE'));
    const rnd = join(dir, 'random.fcb');
    writeFileSync(rnd, randomBytes(4096));
    await expect(verifyBundleFile(rnd, root)).rejects.toThrow(code('BUNDLE_ERR_NOT_A_BUNDLE'));
    const other = join(dir, 'other.tar');
    writeFileSync(other, tarBuffer([{ name: 'README', data: Buffer.from('hi') }]));
    await expect(verifyBundleFile(other, root)).rejects.toThrow(code('BUNDLE_ERR_NOT_A_BUNDLE'));
    const b = readBundleBuffer(goodBuf);
    const three = join(dir, 'three.fcb');
    writeFileSync(three, tarBuffer([{ name: 'manifest.json', data: Buffer.from(JSON.stringify(b.envelope)) }, { name: 'model.onnx.zst', data: b.payload }, { name: 'extra', data: Buffer.from('x') }]));
    await expect(verifyBundleFile(three, root)).rejects.toThrow(code('BUNDLE_ERR_NOT_A_BUNDLE'));
    await expect(verifyBundleFile(join(dir, 'missing.fcb'), root)).rejects.toThrow(code('BUNDLE_ERR_IO'));
  });

  it('signed but inconsistent manifests: payload hash, length, raw hash and size, chunk list, schema', async () => {
    const b = readBundleBuffer(goodBuf);
    await expect(verifyBundleFile(resigned('payload-hash.fcb', (m) => { m.payload.compressedSha256 = 'ab'.repeat(32); }), root)).rejects.toThrow(code('BUNDLE_ERR_PAYLOAD_HASH'));
    await expect(verifyBundleFile(resigned('payload-len.fcb', (m) => { m.payload.compressedLength -= 1; }), root)).rejects.toThrow(code('BUNDLE_ERR_PAYLOAD_LENGTH'));
    const rawHash = resigned('raw-hash.fcb', (m) => { m.payload.rawSha256 = 'cd'.repeat(32); });
    await expect(verifyBundleFile(rawHash, root)).resolves.toMatchObject({ rawChecked: false });
    await expect(verifyBundleFile(rawHash, root, { decompress: true })).rejects.toThrow(code('BUNDLE_ERR_RAW_HASH'));
    await expect(verifyBundleFile(resigned('raw-small.fcb', (m) => { m.payload.rawLength = 1000; }), root, { decompress: true })).rejects.toThrow(code('BUNDLE_ERR_RAW_SIZE'));
    await expect(verifyBundleFile(resigned('raw-big.fcb', (m) => { m.payload.rawLength += 1; }), root, { decompress: true })).rejects.toThrow(code('BUNDLE_ERR_RAW_SIZE'));
    await expect(verifyBundleFile(resigned('chunks.fcb', (m) => { m.payload.chunkHashes.pop(); }), root)).rejects.toThrow(code('BUNDLE_ERR_BAD_MANIFEST'));
    await expect(verifyBundleFile(resigned('schema.fcb', (m) => { (m as { inputs?: unknown }).inputs = []; }), root)).rejects.toThrow(code('BUNDLE_ERR_BAD_MANIFEST'));
    // A payload that hashes right (the release key signed garbage): the decoder refuses it.
    const junk = randomBytes(b.payload.length);
    const jc = new ChunkHasher(b.manifest.payload.chunkSize);
    jc.update(junk);
    const { createHash } = await import('node:crypto');
    const garbage = resigned('not-zstd.fcb', (m) => { m.payload.chunkHashes = jc.finish(); m.payload.compressedSha256 = createHash('sha256').update(junk).digest('hex'); }, { payload: junk });
    await expect(verifyBundleFile(garbage, root)).resolves.toMatchObject({ rawChecked: false });
    await expect(verifyBundleFile(garbage, root, { decompress: true })).rejects.toThrow(code('BUNDLE_ERR_DECOMPRESS'));
  });

  it('keeps working after every failure above', async () => {
    await expect(verifyBundleFile(good, root, { decompress: true })).resolves.toMatchObject({ rawChecked: true });
  });
});

describe('manifest envelopes, chunks and bare payload files', () => {
  it('verifyManifestEnvelope returns the exact signed bytes and their id; refuses a non-envelope', () => {
    const b = readBundleBuffer(goodBuf);
    const v = verifyManifestEnvelope(b.envelope, root);
    expect(v.manifestBytes.equals(b.manifestBytes)).toBe(true);
    expect(v.bundleId).toMatch(/^[0-9a-f]{64}$/);
    expect(() => verifyManifestEnvelope(null as unknown as Envelope, root)).toThrow(code('BUNDLE_ERR_BAD_MANIFEST'));
    expect(() => verifyManifestEnvelope({ ...b.envelope, payloadType: PAYLOAD_TYPES.assignment }, root)).toThrow(code('SIGN_ERR_WRONG_TYPE'));
  });

  it('verifyChunk and chunkRange cover the payload exactly', () => {
    const b = readBundleBuffer(goodBuf);
    const m = b.manifest;
    const n = m.payload.chunkHashes.length;
    let covered = 0;
    for (let i = 0; i < n; i++) {
      const { start, end } = chunkRange(m, i);
      expect(start).toBe(covered);
      covered = end;
      expect(verifyChunk(m, i, b.payload.subarray(start, end))).toBe(true);
    }
    expect(covered).toBe(m.payload.compressedLength);
    const first = Buffer.from(b.payload.subarray(0, m.payload.chunkSize));
    first[0] ^= 1;
    expect(verifyChunk(m, 0, first)).toBe(false);
    expect(verifyChunk(m, 1, b.payload.subarray(0, m.payload.chunkSize))).toBe(false);
    expect(verifyChunk(m, n - 1, b.payload.subarray(chunkRange(m, n - 1).start, chunkRange(m, n - 1).end - 1))).toBe(false);
    expect(verifyChunk(m, n, Buffer.alloc(0))).toBe(false);
    expect(() => chunkRange(m, n)).toThrow(code('BUNDLE_ERR_CHUNK_INDEX'));
    expect(() => chunkRange(m, -1)).toThrow(code('BUNDLE_ERR_CHUNK_INDEX'));
  });

  it('verifyPayloadFile checks a bare payload file and a payload inside the bundle', async () => {
    const b = readBundleBuffer(goodBuf);
    const f = await readBundleFile(good);
    await expect(verifyPayloadFile(b.manifest, good, f.payloadOffset)).resolves.toBeUndefined();
    const bare = join(dir, 'payload.zst');
    writeFileSync(bare, b.payload);
    await expect(verifyPayloadFile(b.manifest, bare)).resolves.toBeUndefined();
    writeFileSync(bare, Buffer.concat([b.payload, Buffer.from([0])]));
    await expect(verifyPayloadFile(b.manifest, bare)).rejects.toThrow(code('BUNDLE_ERR_PAYLOAD_LENGTH'));
    writeFileSync(bare, b.payload.subarray(0, b.payload.length - 1));
    await expect(verifyPayloadFile(b.manifest, bare)).rejects.toThrow(code('BUNDLE_ERR_PAYLOAD_LENGTH'));
  });
});
