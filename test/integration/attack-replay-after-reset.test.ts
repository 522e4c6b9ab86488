/**
 * Rollback by replay after a hub-key revocation. Root v2 lists two hub keys; the
 * agent accepts an assignment signed by the second one (v1 of the model), then
 * one signed by the first (v2). Root v3 revokes the first key, which resets the
 * agent's counter (the way out of a fast-forward). The captured message signed
 * by the surviving key must not reinstall v1: nothing issued before the reset is
 * accepted after it. The honest hub, re-signing under root v3, still can assign
 * (the reset keeps its purpose). Real agent, real broker, real onnxruntime; the
 * hub double plays both the honest hub and the attacker who recorded its messages.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { PAYLOAD_TYPES, type Envelope } from '../../protocol/envelope.js';
import type { ControlPayload } from '../../protocol/control.js';
import { encode, type Assignment } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { generateKeyPair, type KeyPair } from '../../signing/ed25519.js';
import { signEnvelope } from '../../signing/envelope.js';
import { loadRootText, type TrustedRoot } from '../../signing/root.js';
import { nextRootPayload, signNextRoot } from '../../signing/root-rotation.js';
import { fixture, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { makeBundle, type TestBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, waitFor } from '../helpers/env.js';

const DEV = 'dev-replay-reset';
const DAY = 86_400_000;
let fx: Fixture;
let agent: Agent;
let v1: TestBundle;
let v2: TestBundle;

beforeAll(async () => {
  fx = await fixture();
  v1 = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 61 }, chunkSize: 4096 }));
  v2 = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: 62 }, chunkSize: 4096 }));
  agent = fx.newAgent(DEV);
  await agent.start();
});
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

/** The exact bytes the hub publishes on the assign topic (what an eavesdropper records). */
function assignBytes(b: TestBundle, counter: number, key: KeyPair, extra: Partial<Assignment> = {}): Buffer {
  const now = Date.now();
  const payload: Assignment = {
    type: 'fleetcast.assignment/v1', deviceId: DEV, bundleId: b.bundleId, name: b.manifest.name, version: b.manifest.version,
    rolloutId: null, ring: null, counter, issuedAt: now, expiresAt: now + 600_000, ...extra,
  };
  return encode({ v: 1, assignment: signEnvelope(PAYLOAD_TYPES.assignment, encode(payload), [key]), manifest: b.envelope });
}
/** A hub-signed debug-sampling control message (on for 10 minutes, or off). */
function controlBytes(counter: number, key: KeyPair, on: boolean, rootVersion: number): Buffer {
  const now = Date.now();
  const payload: ControlPayload = { type: 'fleetcast.control/v1', deviceId: DEV, counter, issuedAt: now, expiresAt: now + 600_000, debug: on ? { rowsPerWindow: 5, until: now + 600_000 } : null, rootVersion };
  return encode({ v: 1, control: signEnvelope(PAYLOAD_TYPES.control, encode(payload), [key]) });
}
const sendControl = (bytes: Buffer) => fx.hub.publishRaw(topics.control(DEV), bytes, true);
const send = (bytes: Buffer) => fx.hub.publishRaw(topics.assign(DEV), bytes, true);
const sendRoots = (roots: Envelope[]) => fx.hub.publishRaw(topics.trustRoots(), encode({ v: 1, roots }), true);
const codes = () => fx.hub.eventCodes(DEV);
const readRootVersion = () => agent.status().trust?.rootVersion;

describe('rollback by replay after a hub-key revocation', () => {
  it('attack: an assignment (or a control message) signed before a counter reset, by a hub key that survived it, is refused after the reset', async () => {
    const r1: TrustedRoot = loadRootText(readFileSync(fx.keys.rootPath, 'utf8'));
    const h1 = fx.keys.keys.hub;
    const h2 = generateKeyPair();
    // Root v2 lists H1 and H2.
    const { envelope: e2, root: r2 } = signNextRoot(r1, nextRootPayload(r1.payload, { expires: Date.now() + DAY, roles: { hub: { add: [h2.publicKey] } } }), [fx.keys.keys.root]);
    await sendRoots([r1.envelope, e2]);
    await waitFor(() => agent.status().counter === 0 && readRootVersion() === 2, 'root v2 taken');

    // Debug sampling on (signed by H2), then off (by H1): the "on" message is recorded too.
    const capturedOn = controlBytes(100, h2, true, 2);
    await sendControl(capturedOn);
    await waitFor(() => agent.status().telemetry?.debug?.on === true, 'debug sampling on');
    await sendControl(controlBytes(200, h1, false, 2));
    await waitFor(() => agent.status().telemetry?.debug?.on === false, 'debug sampling off');

    const captured = assignBytes(v1, 5, h2, { rootVersion: 2 });
    await send(captured);
    await waitInstalled(agent, v1.bundleId);
    await send(assignBytes(v2, 10, h1, { rootVersion: 2 }));
    await waitInstalled(agent, v2.bundleId);
    expect(agent.status().counter).toBe(10);

    // Root v3 revokes H1: the counter is reset so that the honest hub could recover from a fast-forward.
    const { envelope: e3 } = signNextRoot(r2, nextRootPayload(r2.payload, { expires: Date.now() + DAY, roles: { hub: { revoke: [h1.keyid] } } }), [fx.keys.keys.root]);
    await sendRoots([r1.envelope, e2, e3]);
    await waitFor(() => readRootVersion() === 3 && agent.status().counter === 0, 'root v3 taken, counter reset');

    // The replay of the recorded H2 message (counter 5, v1) is refused, reported, and v2 keeps serving.
    const seen = codes().length;
    await send(captured);
    await waitFor(() => codes().slice(seen).includes('AGENT_ERR_ASSIGNMENT_BEFORE_RESET'), 'the replay refused and reported');
    await agent.idle();
    expect(agent.status().active?.bundleId).toBe(v2.bundleId);
    expect(agent.status().counter).toBe(0);
    // Also an H2 message issued before the reset that this device never saw (counter 8, above every counter it accepted from H2).
    const seen2 = codes().length;
    await send(assignBytes(v1, 8, h2, { rootVersion: 2 }));
    await waitFor(() => codes().slice(seen2).includes('AGENT_ERR_ASSIGNMENT_BEFORE_RESET'), 'the unseen pre-reset message refused');
    expect(agent.status().active?.bundleId).toBe(v2.bundleId);

    // The recorded "debug on" (raw feature values would leave the device) is refused as well.
    const seen3 = codes().length;
    await sendControl(capturedOn);
    await waitFor(() => codes().slice(seen3).includes('AGENT_ERR_CONTROL_REPLAY'), 'the control replay refused and reported');
    expect(agent.status().telemetry?.debug?.on).toBe(false);

    // The honest hub signs under root v3 with its own (small) counter: accepted, so the reset still serves its purpose.
    await send(assignBytes(v1, 11, h2, { rootVersion: 3 }));
    await waitInstalled(agent, v1.bundleId);
    expect(agent.status().counter).toBe(11);
  });
});
