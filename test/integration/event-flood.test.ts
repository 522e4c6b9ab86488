/**
 * A device that floods and poisons the install history, against a real hub in
 * secure mode (enrolled devices, real credentials on the embedded broker) with
 * real agents that really installed a bundle:
 *
 * - attack_event_flood: 3,000 QoS 1 events from one device as fast as the broker
 *   takes them. Only the device's token bucket worth is stored, the rest is
 *   dropped and counted; the hub keeps answering.
 * - attack_forged_installs: "installed" events for bundles never assigned to the
 *   device are kept as its claims (GET /v1/log/claims), never as installs, and the
 *   auditor's export still verifies, listing them as unverified device claims.
 *
 * Both failed before device events were checked: every event was stored, shown
 * as an install on /v1/log/installs, and `audit verify` failed with one problem
 * per forged install.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportAudit } from '../../cli/audit-export.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { topics } from '../../protocol/topics.js';
import { readExport } from '../../signing/audit-export-format.js';
import { verifyAudit } from '../../signing/audit-verify.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { api, startTestHub } from '../helpers/hub-harness.js';
import { connectClient } from '../helpers/mqtt-auth.js';
import { deployedFleetOn } from '../helpers/trust-fixture.js';
import { readFileSync } from 'node:fs';

type Fleet = Awaited<ReturnType<typeof deployedFleetOn>>;
let fleet: Fleet;
let creds: MqttCredentials;
const BURST = 40;

beforeAll(async () => {
  const keys = makeKeys();
  const hub = await startTestHub(keys, { insecureDemo: false, events: { burst: BURST, perMinute: 60, logIntervalMs: 50 } });
  creds = new MqttCredentials(hub.store.db);
  fleet = await deployedFleetOn(hub, keys, ['dev-a', 'dev-b'], { credentials: creds });
  await waitFor(async () => (await api<{ installs: unknown[] }>(hub, 'GET', '/v1/log/installs')).body.installs.length === 2, 'both installs logged');
}, 60_000);

afterAll(async () => { await fleet?.close(); await fleet?.hub.close(); cleanupTempDirs(); });

const storedEvents = (deviceId: string) => fleet.hub.store.db.prepare('SELECT COUNT(*) FROM events WHERE device_id = ?').pluck().get(deviceId) as number;

async function attacker(id: string) {
  const password = creds.enrollDevice(id).password;
  return connectClient(fleet.hub.mqttUrl, { clientId: id, username: id, password });
}

describe('device events against a real secure hub', () => {
  it('attack_event_flood: 3,000 QoS 1 events from one device store at most its burst; the rest are dropped and counted', async () => {
    const c = await attacker('dev-flood');
    const seq0 = Date.now();
    const sent = 3_000;
    await Promise.all(Array.from({ length: sent }, (_, i) => c.publishAsync(topics.device('dev-flood', 'event'),
      JSON.stringify({ v: 1, deviceId: 'dev-flood', seq: seq0 + i, at: Date.now(), kind: 'fetch-failed', code: 'AGENT_ERR_FETCH_TIMEOUT' }), { qos: 1 })));
    await waitFor(() => fleet.hub.events.stats.rateLimited + storedEvents('dev-flood') >= sent, 'every event handled');
    const stored = storedEvents('dev-flood');
    // The bucket refills at 1/s while the flood is handled: allow for the seconds it took, never the flood.
    expect(stored).toBeGreaterThanOrEqual(BURST);
    expect(stored).toBeLessThan(BURST + 60);
    expect(fleet.hub.events.stats.rateLimited).toBe(sent - stored);
    // The hub still serves, and other devices' history is untouched.
    expect((await api(fleet.hub, 'GET', '/v1/health')).status).toBe(200);
    expect(storedEvents('dev-a')).toBeGreaterThan(0);
    await c.endAsync();
  });

  it('attack_forged_installs: installs of bundles never assigned are claims, not installs; the audit stays OK and lists them', async () => {
    const c = await attacker('dev-liar');
    const forged = Array.from({ length: 20 }, () => createHash('sha256').update(randomBytes(8)).digest('hex'));
    // One forged install of the real bundle too: it was never assigned to dev-liar.
    const bundles = [...forged, fleet.bundle.bundleId];
    const seq0 = Date.now();
    for (const [i, bundleId] of bundles.entries()) {
      await c.publishAsync(topics.device('dev-liar', 'event'), JSON.stringify({ v: 1, deviceId: 'dev-liar', seq: seq0 + i, at: Date.now(), kind: 'installed', bundleId, counter: 1 }), { qos: 1 });
    }
    await waitFor(async () => (await api<{ claims: { deviceId: string }[] }>(fleet.hub, 'GET', '/v1/log/claims')).body.claims.filter((x) => x.deviceId === 'dev-liar').length === bundles.length, 'claims recorded');
    const inst = await api<{ installs: { deviceId: string }[]; pending: { deviceId: string }[] }>(fleet.hub, 'GET', '/v1/log/installs');
    expect([...inst.body.installs, ...inst.body.pending].map((i) => i.deviceId).sort()).toEqual(['dev-a', 'dev-b']);

    const dir = tempDir('fleetcast-audit-claims-');
    await exportAudit(fleet.hub.httpUrl, dir, { token: fleet.token });
    const report = verifyAudit(readExport(dir), JSON.parse(readFileSync(fleet.keys.rootPath, 'utf8')));
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.models).toEqual([expect.objectContaining({ bundleId: fleet.bundle.bundleId, devices: 2 })]);
    const liar = report.unverified.filter((u) => u.deviceId === 'dev-liar');
    expect(liar.map((u) => u.bundleId).sort()).toEqual([...bundles].sort());
    expect(liar.every((u) => /never assigned/.test(u.why))).toBe(true);
    await c.endAsync();
  });
});
