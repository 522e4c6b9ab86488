/**
 * Stable error codes of the bundles room (docs/architecture.md "Errors").
 * Signature failures keep their SIGN_ERR_* codes from signing/: they already
 * say exactly what failed, and devices report codes, not prose.
 */
import { errorFactory, type ErrorTable } from '@fleetcast/protocol/errors.js';

export const BUNDLE_ERRORS = {
  BUNDLE_ERR_NOT_A_BUNDLE: { message: 'The file is not a fleetcast bundle (a ustar archive holding manifest.json then model.onnx.zst); build one with `fleetcast bundle build`', status: 400 },
  BUNDLE_ERR_BAD_MANIFEST: { message: 'The bundle manifest is not a valid fleetcast manifest; rebuild the bundle with `fleetcast bundle build`', status: 400 },
  BUNDLE_ERR_PAYLOAD_LENGTH: { message: 'The compressed payload has a different length than the signed manifest says (truncated or padded); download the bundle again', status: 400 },
  BUNDLE_ERR_PAYLOAD_HASH: { message: 'The compressed payload does not match the sha256 in the signed manifest; the bytes were changed: download the bundle again from a trusted source', status: 400 },
  BUNDLE_ERR_CHUNK_HASH: { message: 'A payload chunk does not match its sha256 in the signed manifest; fetch that chunk again', status: 400 },
  BUNDLE_ERR_CHUNK_INDEX: { message: 'A chunk index is outside the chunk list of the bundle manifest; ask only for chunks 0 … chunkCount-1', status: 400 },
  BUNDLE_ERR_RAW_SIZE: { message: 'The decompressed model is larger than allowed or differs in size from the signed manifest; it was refused (possible decompression bomb): rebuild the bundle', status: 413 },
  BUNDLE_ERR_RAW_HASH: { message: 'The decompressed model does not match the raw sha256 in the signed manifest; rebuild the bundle', status: 400 },
  BUNDLE_ERR_DECOMPRESS: { message: 'The payload is not valid zstd data (corrupt, truncated or using features this decoder refuses); download it again or rebuild the bundle', status: 400 },
  BUNDLE_ERR_BAD_MODEL: { message: 'The model is not an ONNX model fleetcast can describe; export it again (onnx.save) with tensor inputs and outputs and check it loads in onnxruntime', status: 400 },
  BUNDLE_ERR_BAD_SCHEMA_FILE: { message: 'The bundle schema file (--schema) is invalid; fix the named entry (input names must be model inputs, features and limits must fit the input shape)', status: 400 },
  BUNDLE_ERR_BAD_OPTION: { message: 'A bundle build option is invalid; see `fleetcast --help` for the accepted values', status: 400 },
  BUNDLE_ERR_IO: { message: 'A file could not be read or written; check the path, the permissions and the free disk space', status: 500 },
  BUNDLE_ERR_BAD_REFERENCE: { message: 'The --reference data is invalid (CSV with a header row, or JSON Lines of objects, with one column per model feature); fix the named line or column', status: 400 },
  BUNDLE_ERR_BAD_GOLDEN: { message: 'The --golden file is invalid (JSON: an array of {inputs, outputs: {NAME: {dims, data}}, tolerance?} cases, or {tolerance, cases}); fix the named case', status: 400 },
  BUNDLE_ERR_SMOKE_FAILED: { message: 'The model fails the smoke inference every device runs before it may serve, so no device could install it; give inputs it accepts: `--example FILE` (inputs only; the build computes and signs the outputs as golden cases), `--golden FILE`, or sizes for its dynamic dimensions such as `--smoke-dims samples=512,batch=1` (the synthetic input sets each dynamic dimension to 1)', status: 400 },
  BUNDLE_ERR_BAD_EXAMPLE: { message: 'The --example file is invalid (JSON: {"inputs": {NAME: nested array or scalar}}, an array of such cases, or {"tolerance": t, "cases": [...]}); fix the named input so it matches the model\'s inputs', status: 400 },
} as const satisfies ErrorTable;

export type BundleErrorCode = keyof typeof BUNDLE_ERRORS;

export const bundleError = errorFactory(BUNDLE_ERRORS);

/** Wrap a file-system failure so it carries a code and the path at fault. */
export function ioError(what: string, path: string, e: unknown) {
  const code = (e as NodeJS.ErrnoException)?.code;
  return bundleError('BUNDLE_ERR_IO', `${what} ${path}: ${code ?? (e as Error)?.message ?? String(e)}`, { path, ...(code ? { errno: code } : {}) });
}
