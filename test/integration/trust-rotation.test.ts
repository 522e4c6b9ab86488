/**
 * The root of trust changes under a running fleet, and history cannot be
 * rewritten unnoticed: a key rotation (new root key, new release key, old
 * release key revoked) followed by a rollout works end to end; and a hub
 * restarted with a different log is detected by its agents and by the auditor.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exportAudit } from '../../cli/audit-export.js';
import { readExport } from '../../signing/audit-export-format.js';
import { verifyAudit } from '../../signing/audit-verify.js';
import { generateKeyPair } from '../../signing/ed25519.js';
import { writeKeyFile } from '../../signing/keys.js';
import { rotateRootFiles } from '../../signing/root-files.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { adminToken, api, makeBundle, startTestHub } from '../helpers/hub-harness.js';
import { deployedFleet } from '../helpers/trust-fixture.js';

afterAll(cleanupTempDirs);

const securityCodes = (hub: { store: { listEvents(id: string, n: number): { kind: string; code?: string }[] } }, id: string) =>
  hub.store.listEvents(id, 100).filter((e) => e.kind === 'security').map((e) => e.code);

describe('trust: rotation and rewritten history', () => {
  it('a key rotation (new root key, new release key, old release key revoked) followed by a rollout works end to end', async () => {
    const fleet = await deployedFleet(['rot-a']);
    let hub = fleet.hub;
    try {
      const agentDir = fleet.agents[0].options.dataDir;
      const newRoot = generateKeyPair();
      const newRelease = { ...generateKeyPair(), role: 'release' as const };
      // Root v2: signed by the old root key AND the new one (TUF 5.3.4/5.3.5).
      const r = rotateRootFiles(fleet.keys.dir, {
        signers: [fleet.keys.keys.root, newRoot],
        change: { roles: { root: { replace: [newRoot.publicKey] }, release: { add: [newRelease.publicKey], revoke: [fleet.keys.keys.release.keyid] } } },
      });
      expect(r.root.version).toBe(2);
      const { mqttPort } = { mqttPort: hub.broker!.port };
      const dataDir = hub.options.dataDir;
      await hub.close();
      hub = await startTestHub(fleet.keys, { dataDir, mqttPort });
      // The agent takes v2 from the retained root chain and persists it.
      await waitFor(() => existsSync(join(agentDir, 'trust', 'roots', 'root-2.json')), 'agent took root v2', 30_000);
      // A bundle signed by the revoked key is refused by the hub…
      const old = await makeBundle([fleet.keys.keys.release], { version: 2, model: { seed: 8 } });
      expect((await api(hub, 'POST', '/v1/bundles', readFileSync(old.path))).body).toMatchObject({ error: { code: 'HUB_ERR_RELEASE_SIGNATURE' } });
      // …one signed by the new key rolls out and installs.
      const v2 = await makeBundle([newRelease], { version: 2, model: { seed: 9 } });
      expect((await api(hub, 'POST', '/v1/bundles', readFileSync(v2.path))).status).toBe(201);
      expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 2, devices: ['rot-a'], allowUnknown: true })).status).toBe(200);
      await waitFor(() => fleet.agents[0].status().active?.bundleId === v2.bundleId, 'v2 installed under root v2', 30_000);
      // The auditor holding root v1 verifies the whole history, both roots included.
      const out = tempDir('fleetcast-audit-rot-');
      await exportAudit(hub.httpUrl, out, { token: adminToken(hub) });
      const report = verifyAudit(readExport(out), JSON.parse(readFileSync(join(fleet.keys.dir, 'roots', 'root-1.json'), 'utf8')));
      expect(report.problems).toEqual([]);
      expect(report.rootVersions).toEqual([1, 2]);
    } finally {
      await fleet.agents[0].stop();
      await hub.close();
    }
  });

  it('a hub-key rotation resets the agents\' counters and the restarted hub re-signs their assignments under the new root, which they take', async () => {
    const fleet = await deployedFleet(['rot-h']);
    let hub = fleet.hub;
    const agent = fleet.agents[0];
    try {
      const before = hub.store.getAssignment('rot-h')!.counter;
      expect(agent.status().counter).toBe(before);
      // Root v2 replaces the hub key (a stolen key revoked); the hub restarts with the new one.
      const newHub = generateKeyPair();
      rotateRootFiles(fleet.keys.dir, { signers: [fleet.keys.keys.root], change: { roles: { hub: { replace: [newHub.publicKey] } } } });
      rmSync(join(fleet.keys.dir, 'hub.key'));
      writeKeyFile(join(fleet.keys.dir, 'hub.key'), 'hub', newHub);
      const { mqttPort, dataDir } = { mqttPort: hub.broker!.port, dataDir: hub.options.dataDir };
      await hub.close();
      // While the broker is gone the agent says why it is offline, with a code, and keeps trying.
      await waitFor(() => agent.status().broker?.code === 'AGENT_ERR_BROKER_UNREACHABLE' && agent.status().broker!.attempts >= 2, 'the agent reports the broker unreachable', 30_000);
      hub = await startTestHub(fleet.keys, { dataDir, mqttPort });
      // The agent took v2 and reset its counter at it; the hub re-signed the current assignment under v2 and the agent holds it,
      // so a replay of anything signed before the rotation is refused (AGENT_ERR_ASSIGNMENT_BEFORE_RESET) while the hub is in step.
      const now = hub.store.getAssignment('rot-h')!;
      expect(now.counter).toBeGreaterThan(before);
      await waitFor(() => agent.status().trust?.counterEpoch === 2 && agent.status().counter === now.counter, 'agent reset at root v2 and holds the re-signed assignment', 30_000);
      expect(agent.status().active?.version).toBe(1);
      // The reset keeps its purpose: the hub with its new key assigns again.
      const v2 = await makeBundle([fleet.keys.keys.release], { version: 2, model: { seed: 11 } });
      expect((await api(hub, 'POST', '/v1/bundles', readFileSync(v2.path))).status).toBe(201);
      expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 2, devices: ['rot-h'] })).status).toBe(200);
      await waitFor(() => agent.status().active?.bundleId === v2.bundleId, 'v2 installed after the hub-key rotation', 30_000);
    } finally {
      await agent.stop();
      await hub.close();
    }
  });

  it('a hub restarted with a rewritten log is detected by its agents and by the auditor', async () => {
    const fleet = await deployedFleet(['rw-a']);
    let hub = fleet.hub;
    try {
      const agentDir = fleet.agents[0].options.dataDir;
      const before = tempDir('fleetcast-audit-before-');
      await exportAudit(hub.httpUrl, before, { token: adminToken(hub) });
      const seen = readExport(before).checkpoints.at(-1)!;
      // The agent holds the latest checkpoint (root v1, manifest, deployment = 3 leaves).
      await waitFor(() => existsSync(join(agentDir, 'trust', 'checkpoint')) && readFileSync(join(agentDir, 'trust', 'checkpoint'), 'utf8') === seen.checkpoint, 'agent holds the checkpoint');
      const mqttPort = hub.broker!.port;
      await hub.close();
      // Same keys, a different history: another bundle first, so the new log is as long but not an extension.
      hub = await startTestHub(fleet.keys, { mqttPort });
      const other = await makeBundle([fleet.keys.keys.release], { name: 'other', version: 1, model: { seed: 21 } });
      expect((await api(hub, 'POST', '/v1/bundles', readFileSync(other.path))).status).toBe(201);
      const again = await makeBundle([fleet.keys.keys.release], { version: 1, model: { seed: 7 } });
      expect((await api(hub, 'POST', '/v1/bundles', readFileSync(again.path))).status).toBe(201);
      await waitFor(() => securityCodes(hub, 'rw-a').includes('AGENT_ERR_LOG_INCONSISTENT'), 'the agent reports the rewritten log', 30_000);
      // The agent kept the old checkpoint as evidence.
      expect(readFileSync(join(agentDir, 'trust', 'checkpoint'), 'utf8')).toBe(seen.checkpoint);
      // The auditor who kept the earlier checkpoint sees the same.
      const after = tempDir('fleetcast-audit-after-');
      await exportAudit(hub.httpUrl, after, { token: adminToken(hub) });
      const alone = verifyAudit(readExport(after), JSON.parse(readFileSync(fleet.keys.rootPath, 'utf8')));
      expect(alone.problems.filter((p) => p.code !== 'SIGN_ERR_AUDIT_UNLOGGED')).toEqual([]); // the new log is self-consistent…
      const report = verifyAudit(readExport(after), JSON.parse(readFileSync(fleet.keys.rootPath, 'utf8')), { knownCheckpoints: [{ name: 'before', text: seen.checkpoint }] });
      expect(report.ok).toBe(false);
      expect(report.problems).toEqual(expect.arrayContaining([expect.objectContaining({ entry: 'known checkpoint before', code: 'SIGN_ERR_MERKLE_CONSISTENCY' })]));
    } finally {
      await fleet.agents[0].stop();
      await hub.close();
    }
  });
});
