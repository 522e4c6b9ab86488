/**
 * Accepting a bundle: verify before storing. The release signature must meet
 * the release threshold of the hub's root.json and every payload hash must
 * match (DESIGN.md "Trust"); only then is the compressed payload copied to its
 * blob and the bundle recorded under its id (sha256 of the signed manifest
 * bytes, docs/architecture.md "Trust"). Same bytes again → the same answer.
 */
import { readBundleFile } from '@fleetcast/bundles/read.js';
import { verifyManifestEnvelope, verifyPayloadFile } from '@fleetcast/bundles/verify.js';
import { errorCode, isFleetcastError } from '@fleetcast/protocol/errors.js';
import type { TrustedRoot } from '@fleetcast/signing/root.js';
import { hubError } from './errors.js';
import { logManifest, requireLog, type LogAppender } from './translog/hooks.js';
import type { BundleRecord, HubStore } from './store.js';

export interface IngestResult { created: boolean; bundle: BundleRecord }

/** Wrap what bundles/ and signing/ throw into the hub's codes, keeping the original as cause. */
function refuse(e: unknown): never {
  if (!isFleetcastError(e)) throw e;
  const code = errorCode(e);
  const err = code.startsWith('SIGN_ERR_')
    ? hubError('HUB_ERR_RELEASE_SIGNATURE', e.message, { cause: code })
    : hubError('HUB_ERR_BAD_BUNDLE', e.message, { cause: code });
  err.cause = e;
  throw err;
}

export async function ingestBundleFile(path: string, deps: { store: HubStore; root: TrustedRoot; now: () => number; log: LogAppender }): Promise<IngestResult> {
  const { store } = deps;
  const log = requireLog(deps.log, 'accepting a bundle');
  let file: Awaited<ReturnType<typeof readBundleFile>>;
  try {
    file = await readBundleFile(path);
  } catch (e) { refuse(e); }
  let verified: ReturnType<typeof verifyManifestEnvelope>;
  try {
    verified = verifyManifestEnvelope(file.envelope, deps.root);
  } catch (e) { refuse(e); }
  const { manifest, bundleId } = verified;
  const known = store.getBundle(bundleId);
  if (known && store.hasBlob(bundleId)) return { created: false, bundle: known };
  // Refuse a clash before spending time on hashes and copying.
  store.assertVersionFree(manifest.name, manifest.version, bundleId);
  try {
    // Length of the tar member, every chunk hash, then the whole-payload hash.
    await verifyPayloadFile(manifest, path, file.payloadOffset, file.payloadLength);
  } catch (e) { refuse(e); }
  await store.putBlob(bundleId, path, file.payloadOffset, file.payloadLength, manifest.payload.chunkSize);
  const r = store.insertBundle({ id: bundleId, envelope: verified.envelope, manifest, createdAt: deps.now() });
  logManifest(log, r.bundle); // transparency log (issue #6): every accepted manifest's exact signed bytes
  return r;
}
