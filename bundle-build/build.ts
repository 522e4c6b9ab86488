/**
 * `fleetcast bundle build`: describe the ONNX model, compress it (streamed to
 * a temp file while hashing every transfer chunk), sign the manifest with the
 * release key(s), and write the two-member ustar archive atomically (temp file
 * in the same directory, fsync, rename), so a reader never sees half a bundle.
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { PAYLOAD_TYPES, type Envelope } from '@fleetcast/protocol/envelope.js';
import { manifestSchema, parseManifest, type Manifest, type TensorSpec } from '@fleetcast/protocol/manifest.js';
import { parse } from '@fleetcast/protocol/schema.js';
import type { KeyPair } from '@fleetcast/signing/ed25519.js';
import { signEnvelope } from '@fleetcast/signing/envelope.js';
import { ChunkHasher } from '@fleetcast/bundles/chunks.js';
import { compressStream } from '@fleetcast/bundles/compress.js';
import { bundleError, ioError } from '@fleetcast/bundles/errors.js';
import { commitTemp, openFileSink, regularOrAbsent, tempPathFor } from '@fleetcast/bundles/file-io.js';
import { readModelInfo } from './onnx-info.js';
import { MANIFEST_MEMBER, PAYLOAD_MEMBER } from '@fleetcast/bundles/read.js';
import { checkGoldenNames } from './golden-file.js';
import { mergeSchema, parseSchemaFile, type BundleSchemaFile } from './schema-file.js';
import { writeTarFile } from '@fleetcast/bundles/tar.js';
import { bundleIdOf } from '@fleetcast/bundles/verify.js';
import { buildReference, type ReferenceOptions, type Row } from './reference.js';
import { examplesToGolden, type ExampleCase } from './example-file.js';
import { buildTimeRunner } from './json-tensor.js';
import { runSmoke } from '@fleetcast/bundles/smoke.js';

/** The agent's default goldenTolerance (agent/options.ts), for the build's own run of the golden cases. */
const BUILD_GOLDEN_TOLERANCE = 1e-4;

export type { BundleSchemaFile } from './schema-file.js';

/** 256 KiB: well under a 1 MB broker packet limit with room for the MQTT header (architecture.md "Bundle file"). */
export const DEFAULT_CHUNK_SIZE = 256 * 1024;
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface BuildBundleOptions {
  /** Path of the .onnx file, or its bytes. */
  model: string | Uint8Array;
  name: string;
  version: number;
  releaseKeys: KeyPair[];
  out: string;
  schema?: BundleSchemaFile;
  chunkSize?: number;
  createdAt?: string;
  golden?: Manifest['golden'];
  /** Inputs only (example-file.ts): run at build time; inputs and outputs are signed as golden cases (after `golden`). */
  examples?: ExampleCase[];
  /** Sizes of dynamic dimensions for the synthetic smoke input (signed into the manifest). */
  smokeDims?: Record<string, number>;
  /**
   * Run the smoke check every device will run, and refuse the build if it
   * fails (BUNDLE_ERR_SMOKE_FAILED). Default true; false only to build a
   * deliberately broken bundle for a test of the device's own refusal.
   */
  smokeCheck?: boolean;
  /** zstd level (default 3; 1 to 9 with the wasm engine on Node < 22.15). */
  level?: number;
  /** Reference rows (bundle-build/reference.ts): their profile is signed into the manifest's `reference`. */
  reference?: Row[];
  referenceOptions?: ReferenceOptions;
}

export interface BuiltBundle { path: string; bundleId: string; manifest: Manifest; envelope: Envelope }

function checkOptions(o: BuildBundleOptions): { chunkSize: number; createdAt: string; keys: KeyPair[] } {
  const bad = (detail: string): never => { throw bundleError('BUNDLE_ERR_BAD_OPTION', detail); };
  if (typeof o.name !== 'string' || !NAME.test(o.name)) bad(`name ${JSON.stringify(o.name)} must be 1-64 of a-z 0-9 . _ - starting with a letter or digit`);
  if (!Number.isSafeInteger(o.version) || o.version < 1) bad(`version must be an integer ≥ 1, got ${o.version}`);
  if (typeof o.out !== 'string' || o.out === '') bad('out must name the bundle file to write');
  // The bundle replaces `out` by rename; never a device, fifo or folder (e.g. /dev/null).
  if (!regularOrAbsent(o.out)) bad(`out ${o.out} exists and is not a regular file`);
  const chunkSize = o.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1024 || chunkSize > 4 * 1024 * 1024) bad(`chunk size must be an integer from 1024 to 4194304 bytes, got ${o.chunkSize}`);
  const createdAt = o.createdAt ?? new Date().toISOString();
  if (typeof createdAt !== 'string' || createdAt.length > 40) bad('createdAt must be an ISO 8601 date string');
  if (!Array.isArray(o.releaseKeys) || o.releaseKeys.length === 0) bad('at least one release key is needed to sign the manifest');
  // Each key counts once towards the threshold (TUF 5.3.4), so a repeated key adds nothing.
  const keys = [...new Map(o.releaseKeys.map((k) => [k.keyid, k])).values()];
  return { chunkSize, createdAt, keys };
}

/** `--smoke-dims samples=512,batch=1` (the last `=` splits, so a name may hold one, e.g. an unnamed `x:1`). */
export function parseSmokeDims(text: string): Record<string, number> {
  const dims: Record<string, number> = Object.create(null);
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const at = part.lastIndexOf('=');
    const name = part.slice(0, at).trim();
    const n = Number(part.slice(at + 1));
    if (at < 1 || !/^[0-9]+$/.test(part.slice(at + 1).trim())) throw bundleError('BUNDLE_ERR_BAD_OPTION', `--smoke-dims wants NAME=SIZE pairs separated by commas (e.g. samples=512,batch=1), got ${JSON.stringify(part)}`);
    dims[name] = n;
  }
  return dims;
}

/** Each name is a dynamic dimension of some input, and each size a positive integer. */
function checkSmokeDims(dims: Record<string, number> | undefined, inputs: readonly TensorSpec[]): void {
  if (!dims) return;
  const symbolic = new Set(inputs.flatMap((t) => t.shape.filter((d): d is string => typeof d === 'string')));
  for (const [name, n] of Object.entries(dims)) {
    if (!symbolic.has(name)) throw bundleError('BUNDLE_ERR_BAD_OPTION', `smoke dim ${JSON.stringify(name)} is not a dynamic dimension of the model's inputs (${[...symbolic].join(', ') || 'it has none'})`);
    if (!Number.isSafeInteger(n) || n < 1 || n > 1 << 20) throw bundleError('BUNDLE_ERR_BAD_OPTION', `smoke dim ${name} must be an integer from 1 to ${1 << 20}, got ${n}`);
  }
}

function loadModel(model: string | Uint8Array): Uint8Array {
  if (typeof model !== 'string') return model;
  try { return readFileSync(model); } catch (e) { throw ioError('cannot read model', model, e); }
}

export async function buildBundle(opts: BuildBundleOptions): Promise<BuiltBundle> {
  const { chunkSize, createdAt, keys } = checkOptions(opts);
  // The bytes described are the bytes compressed: the file is read once.
  const model = loadModel(opts.model);
  const info = readModelInfo(model);
  const merged = mergeSchema(info, opts.schema ? parseSchemaFile(opts.schema) : {});
  const reference = opts.reference ? await buildReference(opts.reference, model, merged.inputs, info.outputs, opts.referenceOptions) : undefined;
  checkSmokeDims(opts.smokeDims, merged.inputs);
  const runner = opts.smokeCheck !== false || opts.examples?.length ? await buildTimeRunner(model, merged.inputs) : null;
  let golden = opts.golden;
  try {
    if (opts.examples?.length) golden = [...(golden ?? []), ...(await examplesToGolden(opts.examples, runner!.run, info.outputs))];
    if (golden) {
      try { parse(manifestSchema.shape.golden, golden, { what: 'golden cases' }); } catch (e) { throw bundleError('BUNDLE_ERR_BAD_MANIFEST', (e as Error).message); }
      checkGoldenNames(golden, merged.inputs.map((i) => i.name), info.outputs.map((o) => o.name));
    }
    // The same check, from the same code (smoke.ts), as the device's Stage: a model no device can install stops here.
    if (opts.smokeCheck !== false) {
      await runSmoke({ inputs: merged.inputs, outputs: info.outputs, golden, smokeDims: opts.smokeDims }, runner!.run, BUILD_GOLDEN_TOLERANCE, (detail) => bundleError('BUNDLE_ERR_SMOKE_FAILED', detail));
    }
  } finally {
    await runner?.release();
  }
  try { mkdirSync(dirname(opts.out), { recursive: true }); } catch (e) { throw ioError('cannot create the folder of', opts.out, e); }
  const payloadTmp = tempPathFor(opts.out, 'zst');
  const tarTmp = tempPathFor(opts.out, 'tar');
  try {
    const sink = openFileSink(payloadTmp);
    const chunks = new ChunkHasher(chunkSize);
    let c;
    try {
      c = await compressStream([model], (b) => { chunks.update(b); sink.write(b); }, { level: opts.level });
      sink.close();
    } catch (e) {
      sink.discard();
      throw e;
    }
    let manifest: Manifest;
    try {
      manifest = parseManifest({
        type: 'fleetcast.bundle/v1',
        name: opts.name,
        version: opts.version,
        createdAt,
        payload: {
          format: 'onnx', compression: 'zstd',
          compressedSha256: c.sha256, compressedLength: c.length,
          rawSha256: c.rawSha256, rawLength: c.rawLength,
          chunkSize, chunkHashes: chunks.finish(),
        },
        inputs: merged.inputs,
        outputs: info.outputs,
        compat: merged.compat,
        ...(golden ? { golden } : {}),
        ...(opts.smokeDims && Object.keys(opts.smokeDims).length ? { smokeDims: opts.smokeDims } : {}),
        ...(reference ? { reference } : {}),
        ...(merged.description !== undefined ? { description: merged.description } : {}),
      });
    } catch (e) {
      throw bundleError('BUNDLE_ERR_BAD_MANIFEST', (e as Error).message);
    }
    // What is signed is exactly these bytes; the bundle id is their hash.
    const bytes = Buffer.from(JSON.stringify(manifest), 'utf8');
    const envelope = signEnvelope(PAYLOAD_TYPES.manifest, bytes, keys);
    const mtime = Math.floor((Date.parse(createdAt) || 0) / 1000);
    await writeTarFile(tarTmp, [
      { name: MANIFEST_MEMBER, data: Buffer.from(JSON.stringify(envelope, null, 2) + '\n', 'utf8') },
      { name: PAYLOAD_MEMBER, path: payloadTmp, size: c.length },
    ], { mtime });
    commitTemp(tarTmp, opts.out);
    return { path: opts.out, bundleId: bundleIdOf(bytes), manifest, envelope };
  } finally {
    rmSync(payloadTmp, { force: true });
    rmSync(tarTmp, { force: true });
  }
}
