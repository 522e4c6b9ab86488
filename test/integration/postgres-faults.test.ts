/**
 * Faults of the PostgreSQL store, on a real PostgreSQL (test/helpers/postgres.ts):
 * - unreachable at start: the compiled `fleetcast hub --store` exits non-zero with HUB_ERR_STORE_UNAVAILABLE;
 * - a database migrated by a newer hub: the compiled hub refuses to start, naming the schema version;
 * - killed inside a multi-row change: nothing of it is written (one transaction);
 * - stopped while the real hub (authentication on) runs with a device: API writes answer 503 with
 *   HUB_ERR_STORE_UNAVAILABLE, the hub process stays up, the device keeps serving its model, and once
 *   PostgreSQL is back the hub reconnects by itself and the next deployment reaches the device, with
 *   no counter taken by the refused one. The device's broker session is never dropped: its credential is
 *   checked against the last one read while the store is away.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubStore } from '../../hub/store.js';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { encode } from '../../protocol/messages.js';
import { generateKeyPair } from '../../signing/ed25519.js';
import { signEnvelope } from '../../signing/envelope.js';
import { http } from '../helpers/agent-fixture.js';
import { killAll, spawnAgent } from '../helpers/agent-process.js';
import { buildCli } from '../helpers/build-cli.js';
import { runCli } from '../helpers/cli-run.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { api } from '../helpers/hub-harness.js';
import { manifestFor, randomPayload } from '../helpers/hub-fixtures.js';
import { hasPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { AGENT_ENTRY, INPUT, RealFleet } from '../helpers/real-fleet.js';

let server: TestPostgres | undefined;
let fleet: RealFleet | undefined;

beforeAll(async () => { if (hasPostgres) server = await startPostgres(); }, 120_000);
afterAll(async () => { killAll(); await fleet?.close(); await server?.close(); cleanupTempDirs(); });

async function one<T>(url: string, sql: string): Promise<T | undefined> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return (await c.query(sql)).rows[0] as T | undefined; } finally { await c.end(); }
}

describe.skipIf(!hasPostgres)('PostgreSQL store faults', () => {
  it('Postgres_unreachable_at_start: the compiled hub exits non-zero with HUB_ERR_STORE_UNAVAILABLE', async () => {
    const cli = await buildCli();
    const keys = makeKeys();
    const closed = await freePort();
    const r = await runCli(tempDir(), cli, ['hub', '--data', tempDir(), '--keys', keys.dir, '--mqtt-port', '0', '--http-port', '0', '--store', `postgres://postgres@127.0.0.1:${closed}/fleetcast`], { ...process.env });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('HUB_ERR_STORE_UNAVAILABLE');
    expect(r.stderr).toContain(`127.0.0.1:${closed}`);
  });

  it('Schema_newer_than_hub_at_start: the compiled hub refuses a database migrated by a newer hub, naming the version it needs', async () => {
    const url = await server!.newDatabase();
    HubStore.open(tempDir(), { url }).close();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try { await c.query('UPDATE schema_version SET version = 99'); } finally { await c.end(); }
    const r = await runCli(tempDir(), await buildCli(), ['hub', '--data', tempDir(), '--keys', makeKeys().dir, '--mqtt-port', '0', '--http-port', '0', '--store', url], { ...process.env });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('HUB_ERR_STORE_SCHEMA');
    expect(r.stderr).toContain('schema version 99');
  });

  it('Postgres_killed_mid_transaction: a batch of assignments cut off half-way leaves no counter and no assignment', async () => {
    const url = await server!.newDatabase();
    const store = HubStore.open(tempDir(), { url });
    const release = generateKeyPair();
    const manifest = manifestFor(randomPayload(2000));
    const bytes = encode(manifest);
    const id = createHash('sha256').update(bytes).digest('hex');
    store.insertBundle({ id, manifest, envelope: signEnvelope(PAYLOAD_TYPES.manifest, bytes, [release]), createdAt: 1 });
    const items = ['d1', 'd2', 'd3'].map((deviceId) => ({ deviceId, bundleId: id, rolloutId: null, ring: null }));
    let err: unknown;
    try {
      store.issueAssignments(items, (deviceId, counter) => {
        // d1's counter and assignment are written inside the transaction; PostgreSQL dies before d2's.
        if (deviceId === 'd2') server!.killNow();
        return { envelope: { payloadType: 't', payload: Buffer.from(`${deviceId}:${counter}`).toString('base64'), signatures: [] }, issuedAt: 1, expiresAt: 2 };
      });
    } catch (e) { err = e; }
    expect(err).toMatchObject({ code: 'HUB_ERR_STORE_UNAVAILABLE', status: 503 });
    await server!.kill();
    await server!.restart();
    expect(await one(url, 'SELECT count(*)::int AS n FROM device_counters')).toEqual({ n: 0 });
    expect(await one(url, 'SELECT count(*)::int AS n FROM assignments')).toEqual({ n: 0 });
    // The store reconnects by itself; the same batch then goes through whole.
    const issued = await waitFor(() => { try { return store.issueAssignments(items, (d, c) => ({ envelope: { payloadType: 't', payload: Buffer.from(`${d}:${c}`).toString('base64'), signatures: [] }, issuedAt: 1, expiresAt: 2 })); } catch { return undefined; } }, 'the store back', 30_000, 200);
    expect(issued.map((a) => a.counter)).toEqual([1, 1, 1]);
    store.close();
  }, 120_000);

  it('Postgres_lost_while_running: writes answer 503 HUB_ERR_STORE_UNAVAILABLE, the device keeps serving, the hub recovers by itself', async () => {
    const url = await server!.newDatabase();
    fleet = await RealFleet.start({ storeUrl: url });
    const hub = fleet.hub;
    const enrolled = await api<{ credentials: { mqttUsername: string; mqttPassword: string }[] }>(hub, 'POST', '/v1/enrollments', { devices: ['pg-dev-2'] }, fleet.token);
    const config = join(tempDir('fleetcast-cred-'), 'pg-dev-2.json');
    writeFileSync(config, JSON.stringify(enrolled.body.credentials[0]), { mode: 0o600 });
    const v1 = await fleet.publish(1);
    const v2 = await fleet.publish(2);
    await fleet.deploy(v1, ['pg-dev-2']);
    const agent = spawnAgent(AGENT_ENTRY, ['--broker', hub.mqttUrl, '--device-id', 'pg-dev-2', '--data', tempDir('fleetcast-pg-agent-'), '--root', fleet.keys.rootPath, '--listen', '127.0.0.1:0', '--config', config, '--quiet'], {
      FLEETCAST_AGENT_HEARTBEAT_MS: '500', FLEETCAST_AGENT_RECONNECT_PERIOD_MS: '100',
    });
    await fleet.registrySays('pg-dev-2', v1.bundleId, 'committed', -1, 90_000);
    const port = Number(await waitFor(() => /predict API http:\/\/127\.0\.0\.1:(\d+)/.exec(agent.io.stdout)?.[1], 'agent listen line', 60_000));

    // The device stays connected through the outage: the broker checks its credential against the last one read.
    let dropped = 0;
    hub.broker!.aedes.on('clientDisconnect', (c) => { if (c.id === 'pg-dev-2') dropped++; });
    await server!.stop();
    const refused = await api<{ error: { code: string } }>(hub, 'POST', '/v1/deployments', { name: 'churn', version: 2, devices: ['pg-dev-2'] }, fleet.token);
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('HUB_ERR_STORE_UNAVAILABLE');
    // The device serves its model throughout, and the hub's timers (reports, refresh, telemetry) ride out the outage.
    for (let i = 0; i < 10; i++) {
      expect((await http(port, 'POST', '/v1/predict', INPUT)).json.model.bundleId).toBe(v1.bundleId);
      await new Promise((r) => setTimeout(r, 200));
    }

    await server!.restart();
    await waitFor(async () => (await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 2, devices: ['pg-dev-2'] }, fleet!.token)).status === 200, 'a deployment accepted after PostgreSQL is back', 30_000, 250);
    await fleet.registrySays('pg-dev-2', v2.bundleId, 'committed', -1, 90_000);
    // v1 took counter 1, v2 counter 2: the refused deployment took nothing.
    expect(await one(url, "SELECT counter::int AS counter FROM assignments WHERE device_id = 'pg-dev-2'")).toEqual({ counter: 2 });
    expect((await http(port, 'POST', '/v1/predict', INPUT)).json.model.bundleId).toBe(v2.bundleId);
    expect(dropped).toBe(0);
  }, 120_000);
});
