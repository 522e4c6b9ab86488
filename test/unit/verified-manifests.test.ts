/**
 * A swap back to the model in the previous slot brings the same release-signed
 * manifest again; the agent reuses its verified result (agent/verified-manifests.ts)
 * instead of parsing and schema-checking it on the serving loop again. Reuse must
 * refuse whatever a fresh check refuses: the assignment around the manifest is
 * checked fresh every time, and a result is reused only for the same signed bytes
 * under the same root object. Real keys, bundle and signatures.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { checkAssignMessageAsync, type CheckContext } from '../../agent/assignment-check.js';
import { VerifiedManifests } from '../../agent/verified-manifests.js';
import { errorCode } from '../../protocol/errors.js';
import { loadRootText } from '../../signing/root.js';
import { assignMessageBytes, makeBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, makeKeys } from '../helpers/env.js';

const DEV = 'dev-verified-manifests';
afterAll(() => cleanupTempDirs());

const refusal = (p: Promise<unknown>) => p.then(() => 'accepted', (e: unknown) => errorCode(e));

describe('verified manifests (agent)', () => {
  it('a swap back reuses the verified manifest of the same signed bytes, and still checks the assignment around it fresh', async () => {
    const keys = makeKeys();
    const root = loadRootText(readFileSync(keys.rootPath, 'utf8'));
    const b = await makeBundle(keys, { version: 1, mlp: { seed: 31 } });
    const other = await makeBundle(keys, { version: 2, mlp: { seed: 32 } });
    const ctx: CheckContext = { root, deviceId: DEV, runtimeName: 'onnxruntime-node@1', maxRawModelBytes: 2 ** 30, now: Date.now, manifests: new VerifiedManifests() };
    const hub = keys.keys.hub;

    const first = await checkAssignMessageAsync(assignMessageBytes(hub, DEV, b, 1), ctx);
    expect(first.verified.bundleId).toBe(b.bundleId);
    // Another version in between, then back (a later counter, a new assignment): the one verified result, not a new parse.
    await checkAssignMessageAsync(assignMessageBytes(hub, DEV, other, 2), ctx);
    const back = await checkAssignMessageAsync(assignMessageBytes(hub, DEV, b, 3), ctx);
    expect(back.verified).toBe(first.verified);
    expect(back.assignment.counter).toBe(3);
    // Without the cache every check parses again (what the agent did before).
    const plain = { ...ctx, manifests: undefined };
    expect((await checkAssignMessageAsync(assignMessageBytes(hub, DEV, b, 4), plain)).verified).not.toBe(first.verified);

    // The assignment is still checked fresh around a remembered manifest.
    const flip = (sig: string) => Buffer.from(Buffer.from(sig, 'base64').map((x, i) => (i === 0 ? x ^ 1 : x))).toString('base64');
    expect(await refusal(checkAssignMessageAsync(assignMessageBytes(hub, DEV, b, 5, { tamper: (e) => ({ ...e, signatures: e.signatures.map((s) => ({ ...s, sig: flip(s.sig) })) }) }), ctx))).toBe('AGENT_ERR_ASSIGNMENT_SIGNATURE');
    expect(await refusal(checkAssignMessageAsync(assignMessageBytes(hub, 'another-device', b, 5), ctx))).toBe('AGENT_ERR_ASSIGNMENT_WRONG_DEVICE');
    // The hub names the other bundle but sends this (remembered) manifest along: the bundle id is still recomputed and compared.
    expect(await refusal(checkAssignMessageAsync(assignMessageBytes(hub, DEV, other, 5, { manifestEnvelope: b.envelope }), ctx))).toBe('AGENT_ERR_MANIFEST_MISMATCH');
    expect(await refusal(checkAssignMessageAsync(assignMessageBytes(hub, DEV, b, 5, { version: 9 }), ctx))).toBe('AGENT_ERR_MANIFEST_MISMATCH');

    // The same manifest payload with a flipped signature: not the remembered bytes, checked and refused.
    const flipped = { ...b.envelope, signatures: b.envelope.signatures.map((s) => ({ ...s, sig: flip(s.sig) })) };
    expect(await refusal(checkAssignMessageAsync(assignMessageBytes(hub, DEV, b, 5, { manifestEnvelope: flipped }), ctx))).toBe('AGENT_ERR_MANIFEST_SIGNATURE');
  });

  it('a manifest remembered under one root is verified again under another root, and refused when that root does not list its release key', async () => {
    const keys = makeKeys();
    const stranger = makeKeys();
    const root = loadRootText(readFileSync(keys.rootPath, 'utf8'));
    // A root whose hub key signs the assignment but whose release key did not sign the manifest.
    const otherRoot = loadRootText(readFileSync(stranger.rootPath, 'utf8'));
    const b = await makeBundle(keys, { version: 1, mlp: { seed: 33 } });
    const manifests = new VerifiedManifests();
    const ctx: CheckContext = { root, deviceId: DEV, runtimeName: 'onnxruntime-node@1', maxRawModelBytes: 2 ** 30, now: Date.now, manifests };
    await checkAssignMessageAsync(assignMessageBytes(keys.keys.hub, DEV, b, 1), ctx);
    expect(manifests.get(b.envelope, root)).toBeDefined();
    expect(manifests.get(b.envelope, otherRoot)).toBeUndefined();
    expect(await refusal(checkAssignMessageAsync(assignMessageBytes(stranger.keys.hub, DEV, b, 2), { ...ctx, root: otherRoot }))).toBe('AGENT_ERR_MANIFEST_SIGNATURE');
    // A refusal is never remembered: the same bytes are refused again.
    expect(await refusal(checkAssignMessageAsync(assignMessageBytes(stranger.keys.hub, DEV, b, 3), { ...ctx, root: otherRoot }))).toBe('AGENT_ERR_MANIFEST_SIGNATURE');
  });
});
