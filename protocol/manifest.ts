/**
 * The bundle manifest: what the release team signs. It names the model, its
 * monotonic version, the payload's hashes and lengths (compressed and raw, and a
 * hash per transfer chunk), what the model needs, its input/output schema, and
 * (optionally) golden cases and a reference profile.
 */
import { arr, bool, int, json, num, obj, optional, parse, record, sha256Hex, str, union, type Infer } from './schema.js';

export const ELEMENT_TYPES = ['float32', 'float64', 'float16', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'bool', 'string'] as const;
export type ElementType = (typeof ELEMENT_TYPES)[number];

/** A dimension is a fixed size, or a symbolic name for a dynamic one (e.g. "batch"). */
export const dimSchema = union(int({ min: 0 }), str({ min: 1, max: 64 }));

const limit = union(num(), arr(num(), { max: 65536 }));

export const tensorSpecSchema = obj({
  name: str({ min: 1, max: 256 }),
  type: str({ enum: ELEMENT_TYPES }),
  shape: arr(dimSchema, { max: 16 }),
  /** Feature names over the last dimension (a [N, 16] input is 16 features). */
  features: optional(arr(str({ min: 1, max: 128 }), { max: 65536 })),
  /** Inclusive limits, one for all features or one per feature. */
  min: optional(limit),
  max: optional(limit),
  /** NaN and ±Infinity are refused unless allowed. */
  allowNaN: optional(bool()),
});
export type TensorSpec = Infer<typeof tensorSpecSchema>;

export const goldenCaseSchema = obj({
  inputs: record(json()),
  // Numbers (bool outputs as 0/1), or strings for a string output, compared exactly.
  outputs: record(obj({ dims: arr(int({ min: 0 })), data: arr(union(num(), str({ max: 4096 }))) })),
  tolerance: optional(num({ min: 0 })),
});

export const manifestSchema = obj({
  type: str({ enum: ['fleetcast.bundle/v1'] as const }),
  name: str({ pattern: /^[a-z0-9][a-z0-9._-]{0,63}$/ }),
  version: int({ min: 1 }),
  createdAt: str({ max: 40 }),
  payload: obj({
    format: str({ enum: ['onnx'] as const }),
    compression: str({ enum: ['zstd'] as const }),
    compressedSha256: sha256Hex(),
    compressedLength: int({ min: 0 }),
    rawSha256: sha256Hex(),
    rawLength: int({ min: 0 }),
    chunkSize: int({ min: 1024, max: 4 * 1024 * 1024 }),
    chunkHashes: arr(sha256Hex(), { max: 1_000_000 }),
  }),
  inputs: arr(tensorSpecSchema, { min: 1, max: 256 }),
  outputs: arr(tensorSpecSchema, { min: 1, max: 256 }),
  compat: obj({
    runtimes: optional(arr(str({ max: 64 }), { max: 8 })),
    opset: optional(int({ min: 1 })),
    agentVersion: optional(str({ max: 64 })),
    hardware: optional(arr(str({ max: 64 }), { max: 32 })),
    minMemoryMB: optional(int({ min: 0 })),
  }),
  golden: optional(arr(goldenCaseSchema, { max: 256 })),
  /**
   * Sizes for the synthetic smoke input's dynamic dimensions (by symbolic name),
   * for models that need more than 1 (reflect padding, strided convolutions, a
   * minimum sequence length); a dimension not named here is 1. Unused when
   * golden cases are present: they replace the synthetic input.
   */
  smokeDims: optional(record(int({ min: 1, max: 1 << 20 }), { maxKeys: 64 })),
  reference: optional(json()),
  description: optional(str({ max: 4096 })),
});
export type Manifest = Infer<typeof manifestSchema>;

export function parseManifest(value: unknown): Manifest {
  return parse(manifestSchema, value, { code: 'PROTO_ERR_INVALID_MESSAGE', what: 'bundle manifest' });
}

export function chunkCount(m: Pick<Manifest, 'payload'>): number {
  return m.payload.chunkHashes.length;
}
