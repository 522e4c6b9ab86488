/**
 * The agent checks an assignment's signatures on libuv's threadpool, so a root
 * update can be taken while the check waits. A root that revokes the hub key
 * that signed the assignment (and so resets the counter) must refuse it: the
 * check is made again against the root the device holds when it decides. An
 * attacker holding the revoked key would otherwise get an assignment accepted
 * after the revocation took effect (signed "under" the new root's version, with
 * a counter above the reset one). Real Installer, state store, keys and bundle;
 * the root update is made by the manifest-verifier seam, which runs between
 * the assignment's signature check and the decision.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ActiveModel } from '../../agent/active-model.js';
import { Installer, type Rejection } from '../../agent/installer.js';
import type { ModelEntry } from '../../agent/model-loader.js';
import { Reporter } from '../../agent/reporter.js';
import { createOrtRuntime } from '../../agent/runtime.js';
import { StateStore } from '../../agent/state-store.js';
import { verifyManifestEnvelope } from '../../bundles/verify.js';
import type { DeviceEvent } from '../../protocol/messages.js';
import { generateKeyPair, keyIdOf } from '../../signing/ed25519.js';
import { loadRootText, type TrustedRoot } from '../../signing/root.js';
import { nextRootPayload, signNextRoot } from '../../signing/root-rotation.js';
import { assignMessageBytes, makeBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';

const DEV = 'dev-root-during-check';
afterAll(() => cleanupTempDirs());

describe('installer', () => {
  it('an assignment whose hub key a root taken during its signature check revokes is refused (AGENT_ERR_ASSIGNMENT_SIGNATURE), not installed', async () => {
    const keys = makeKeys();
    const b = await makeBundle(keys, { version: 1, mlp: { seed: 94 } });
    const r1: TrustedRoot = loadRootText(readFileSync(keys.rootPath, 'utf8'));
    const h1 = keys.keys.hub;
    const h2 = generateKeyPair();
    // Root v2 revokes H1 (compromised) and lists H2.
    const r2 = signNextRoot(r1, nextRootPayload(r1.payload, { expires: Date.now() + 86_400_000, roles: { hub: { add: [h2.publicKey], revoke: [keyIdOf(h1.publicKey)] } } }), [keys.keys.root]).root;
    expect(r2.roles.hub.keys.has(keyIdOf(h1.publicKey))).toBe(false);

    const store = await StateStore.open(tempDir('fleetcast-installer-root-'));
    // What the agent does on a hub-key revocation (agent.ts onHubKeysRevoked): the counter reset at root v2. Made
    // beforehand, as the seam below cannot wait for a state write; root v2 itself is taken during the check.
    await store.update((s) => { s.counter = 0; s.counterEpoch = 2; });
    let root = r1;
    const events: DeviceEvent[] = [];
    const rejected: Rejection[] = [];
    const reporter = new Reporter({
      deviceId: DEV, client: null, now: Date.now, agentVersion: 'test', runtime: 'onnxruntime-node', capabilities: {}, heartbeatMs: 0, seqBase: 0,
      snapshot: () => ({ active: null, previous: null, phase: 'idle', target: null, progress: null, lastError: null, counter: store.state.counter }),
      onEvent: (e) => events.push(e),
    });
    const installer = new Installer({
      check: {
        get root() { return root; }, deviceId: DEV, runtimeName: 'onnxruntime-node@1', maxRawModelBytes: 2 ** 30, now: Date.now,
        // Runs after the assignment's signature was checked on the threadpool: root v2 is taken right then.
        verifyManifest: (env, r) => {
          root = r2;
          return verifyManifestEnvelope(env, r);
        },
      },
      store, runtime: createOrtRuntime(), active: new ActiveModel<ModelEntry>(), client: null, reporter,
      fetch: { chunkTimeoutMs: 500, maxFetchAttempts: 1, maxBackoffMs: 100, backoffJitter: 0 },
      maxBatch: 64, goldenTolerance: 1e-4, now: Date.now,
      onInstalled: () => {}, onRejected: (r) => rejected.push(r),
    });

    // Signed with the revoked key, claiming the new root's version and a counter above the reset one.
    installer.handleAssign(assignMessageBytes(h1, DEV, b, 1, { rootVersion: 2 }));
    await waitFor(() => rejected.length > 0 || events.some((e) => e.kind === 'assignment-accepted'), 'the assignment decided');
    await installer.stop();
    expect(events.map((e) => e.kind)).not.toContain('assignment-accepted');
    expect(rejected[0]).toMatchObject({ code: 'AGENT_ERR_ASSIGNMENT_SIGNATURE', phase: 'assignment' });
    expect(store.state.counter).toBe(0);
  });
});
