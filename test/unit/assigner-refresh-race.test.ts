/**
 * The assignment refresher against a deployment made while it runs, on a real
 * hub.db. The refresher reads the assignments due, then re-signs them in
 * batches, waiting for the broker's PUBACKs between batches. A deployment (or a
 * rollout's rollback) that lands in that wait must not be undone by a later
 * batch re-issuing the bundle the device had when the refresh began.
 */
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { Assigner } from '../../hub/assignments.js';
import { HubStore } from '../../hub/store.js';
import { TransparencyLog } from '../../hub/translog/translog.js';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { decodeAssignMessage, encode } from '../../protocol/messages.js';
import { generateKeyPair } from '../../signing/ed25519.js';
import { signEnvelope } from '../../signing/envelope.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { manifestFor, randomPayload, silentLogger } from '../helpers/hub-fixtures.js';

afterAll(cleanupTempDirs);

const release = generateKeyPair();
const hubKey = { ...generateKeyPair(), role: 'hub' as const };

function bundle(store: HubStore, version: number) {
  const manifest = manifestFor(randomPayload(2048), 1024, 'race', version);
  const bytes = encode(manifest);
  const id = createHash('sha256').update(bytes).digest('hex');
  store.insertBundle({ id, manifest, envelope: signEnvelope(PAYLOAD_TYPES.manifest, bytes, [release]), createdAt: 1 });
  return store.getBundle(id)!;
}

describe('assignment refresher', () => {
  it('Refresh_does_not_undo_a_deployment: a device deployed to while a refresh waits for the broker keeps its new bundle', async () => {
    let t = 1_000_000;
    const store = HubStore.open(tempDir());
    const v1 = bundle(store, 1);
    const v2 = bundle(store, 2);
    // The broker's retained assign message per topic, and a gate that holds the refresher's first PUBACK.
    const retained = new Map<string, string>();
    let hold: Promise<void> | null = null;
    let held = false;
    let release2: () => void = () => {};
    const assigner = new Assigner({
      store, log: new TransparencyLog(store.db, { hubKey: hubKey as never }), hubKey: hubKey as never, rootVersion: 1, ttlMs: 60_000, publishTimeoutMs: 600_000, now: () => t, logger: silentLogger(),
      publish: async (topic, payload) => {
        retained.set(topic, decodeAssignMessage(payload).manifest.payload);
        if (hold) { held = true; await hold; }
      },
    });
    // More devices than one signing batch (256), so the refresh has a second batch after a wait.
    const devices = Array.from({ length: 300 }, (_, i) => `dev-${String(i).padStart(3, '0')}`);
    await assigner.assign(v1, devices);
    const last = devices[devices.length - 1];

    t += 40_000; // past half the TTL: every assignment is due
    hold = new Promise<void>((r) => { release2 = r; });
    const refresh = assigner.refreshDue();
    await waitFor(() => held, 'the refresher waiting for its first batch to be acknowledged', 60_000);
    hold = null;
    // An operator deploys v2 to the last device (in the refresher's second batch) meanwhile.
    await assigner.assign(v2, [last]);
    expect(store.getAssignment(last)?.bundleId).toBe(v2.id);
    release2();
    await refresh;

    expect(store.getAssignment(last)?.bundleId).toBe(v2.id);
    expect(retained.get(`fc/v1/dev/${last}/assign`)).toBe(v2.envelope.payload);
    // The others were refreshed, still v1.
    expect(store.getAssignment(devices[0])?.bundleId).toBe(v1.id);
    expect(store.getAssignment(devices[0])!.issuedAt).toBe(t);
    store.close();
  }, 120_000);
});
