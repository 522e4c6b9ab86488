/** The bundles room: read, inspect and verify signed model bundles (what agent and hub need; building them is @fleetcast/bundle-build). */
export { BUNDLE_ERRORS, bundleError, type BundleErrorCode } from './errors.js';
export {
  compressFile, compressBuffer, compressStream, decompressFile, decompressBuffer, decompressStream, openBoundedDecompressor,
  zstdEngine, zstdStreamsOpen, MAX_OPEN_STREAMS, WASM_MAX_LEVEL, type BoundedDecompressor, type CompressResult, type DecompressResult,
} from './compress.js';
export { tarHeader, tarBuffer, parseTarHeader, listTarBuffer, listTarFile, writeTarFile, type TarEntry, type TarMember } from './tar.js';
export { ChunkHasher, expectedChunkCount } from './chunks.js';
export { readBundleFile, readBundleBuffer, decodeManifest, decodeManifestMember, MANIFEST_MEMBER, PAYLOAD_MEMBER, MAX_MANIFEST_BYTES, type BundleHead } from './read.js';
export { bundleIdOf, verifyManifestEnvelope, verifyChunk, chunkRange, verifyPayloadFile, verifyBundleFile, type VerifiedManifest } from './verify.js';
export { runSmoke, smokeInputs, smokePlan, outputValues, type SmokeRun, type SmokeTensor, type SmokeManifest } from './smoke.js';
