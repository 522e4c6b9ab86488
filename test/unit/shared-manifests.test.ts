/**
 * The simulator's shared manifest verification (simulator/shared-manifests.ts)
 * must refuse whatever a device's own check refuses, while verifying the same
 * manifest against the same root once for a whole fleet.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyManifestEnvelope } from '../../bundles/verify.js';
import { errorCode } from '../../protocol/errors.js';
import { loadRootText } from '../../signing/root.js';
import { sharedManifestVerify } from '../../simulator/shared-manifests.js';
import { cleanupTempDirs, makeKeys } from '../helpers/env.js';
import { makeBundle } from '../helpers/hub-harness.js';

afterAll(cleanupTempDirs);

const refusal = (f: () => unknown) => { try { f(); return 'accepted'; } catch (e) { return errorCode(e); } };

describe('shared manifest verification (simulator)', () => {
  it('verifies a manifest once per root for every agent, and still refuses what a device refuses', async () => {
    const keys = makeKeys();
    const other = makeKeys();
    const root = loadRootText(readFileSync(join(keys.dir, 'root.json'), 'utf8'));
    const otherRoot = loadRootText(readFileSync(join(other.dir, 'root.json'), 'utf8'));
    const b = await makeBundle([keys.keys.release], { name: 'shared', version: 1 });
    const verify = sharedManifestVerify();

    const first = verify(b.envelope, root);
    expect(first.bundleId).toBe(b.bundleId);
    // Another agent, another parse of the same bytes: the one verified result, shared.
    expect(verify(JSON.parse(JSON.stringify(b.envelope)), root)).toBe(first);

    // A signature flipped after the good manifest was accepted: refused as the device refuses it.
    const sig = b.envelope.signatures[0];
    const flipped = { ...b.envelope, signatures: [{ ...sig, sig: Buffer.from(Buffer.from(sig.sig, 'base64').map((x, i) => (i === 0 ? x ^ 1 : x))).toString('base64') }] };
    expect(refusal(() => verify(flipped, root))).toBe(refusal(() => verifyManifestEnvelope(flipped, root)));
    expect(refusal(() => verify(flipped, root))).not.toBe('accepted');
    // Another payload under the good signature: refused.
    const swapped = { ...b.envelope, payload: Buffer.from(Buffer.from(b.envelope.payload, 'base64').toString('utf8').replace('"shared"', '"shaded"')).toString('base64') };
    expect(refusal(() => verify(swapped, root))).not.toBe('accepted');
    // The same manifest checked against a root that does not list its release key: refused, cached success or not.
    expect(refusal(() => verify(b.envelope, otherRoot))).toBe(refusal(() => verifyManifestEnvelope(b.envelope, otherRoot)));
    expect(refusal(() => verify(b.envelope, otherRoot))).not.toBe('accepted');
  });
});
