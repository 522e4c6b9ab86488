/**
 * The real hub, authentication ON, on a real PostgreSQL (--store, test/helpers/postgres.ts): a device
 * enrolled through the API runs the compiled agent, a bundle is published and deployed, the device
 * installs it, its telemetry is ingested, and the auditor's export of the transparency log verifies.
 * Everything the hub keeps is in PostgreSQL: the data folder holds no hub.db.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportAudit } from '../../cli/audit-export.js';
import { readExport } from '../../signing/audit-export-format.js';
import { verifyAudit } from '../../signing/audit-verify.js';
import { http } from '../helpers/agent-fixture.js';
import { killAll, spawnAgent } from '../helpers/agent-process.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { api } from '../helpers/hub-harness.js';
import { hasPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { AGENT_ENTRY, INPUT, RealFleet } from '../helpers/real-fleet.js';

let server: TestPostgres | undefined;
let fleet: RealFleet | undefined;

beforeAll(async () => { if (hasPostgres) server = await startPostgres(); }, 120_000);
afterAll(async () => { killAll(); await fleet?.close(); await server?.close(); cleanupTempDirs(); });

async function count(url: string, table: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return Number((await c.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n); } finally { await c.end(); }
}

describe.skipIf(!hasPostgres)('real hub on PostgreSQL', () => {
  it('Hub_on_postgres_end_to_end: enroll, publish, deploy, install, telemetry ingested, audit verify passes', async () => {
    fleet = await RealFleet.start({ storeUrl: server!.url });
    const hub = fleet.hub;
    expect(existsSync(join(hub.options.dataDir, 'hub.db'))).toBe(false);

    const enrolled = await api<{ credentials: { deviceId: string; mqttUsername: string; mqttPassword: string }[] }>(hub, 'POST', '/v1/enrollments', { devices: ['pg-dev-1'] }, fleet.token);
    expect(enrolled.status).toBe(201);
    const cred = enrolled.body.credentials[0];
    const config = join(tempDir('fleetcast-cred-'), 'pg-dev-1.json');
    writeFileSync(config, JSON.stringify({ mqttUsername: cred.mqttUsername, mqttPassword: cred.mqttPassword }), { mode: 0o600 });

    const v1 = await fleet.publish(1);
    await fleet.deploy(v1, ['pg-dev-1']);
    const agent = spawnAgent(AGENT_ENTRY, ['--broker', hub.mqttUrl, '--device-id', 'pg-dev-1', '--data', tempDir('fleetcast-pg-agent-'), '--root', fleet.keys.rootPath, '--listen', '127.0.0.1:0', '--config', config, '--quiet'], {
      FLEETCAST_AGENT_HEARTBEAT_MS: '0', FLEETCAST_AGENT_RECONNECT_PERIOD_MS: '100',
      FLEETCAST_AGENT_TELEMETRY: JSON.stringify({ windowMs: 300, sampleRate: 1 }),
    });
    await fleet.registrySays('pg-dev-1', v1.bundleId, 'committed', -1, 90_000);

    const port = Number(await waitFor(() => /predict API http:\/\/127\.0\.0\.1:(\d+)/.exec(agent.io.stdout)?.[1], 'agent listen line', 60_000));
    for (let i = 0; i < 5; i++) expect((await http(port, 'POST', '/v1/predict', INPUT)).json.model.bundleId).toBe(v1.bundleId);
    const stats = await waitFor(async () => {
      const r = await api<{ devices: { deviceId: string; lastSeq: number }[] }>(hub, 'GET', '/v1/telemetry/devices', undefined, fleet!.token);
      return r.body.devices?.find((d) => d.deviceId === 'pg-dev-1');
    }, 'telemetry from pg-dev-1 ingested', 60_000, 200);
    expect(stats.lastSeq).toBeGreaterThanOrEqual(0);

    await waitFor(async () => (await api<{ installs: unknown[] }>(hub, 'GET', '/v1/log/installs', undefined, fleet!.token)).body.installs?.length === 1, 'the install logged', 60_000, 200);
    const out = tempDir('fleetcast-pg-audit-');
    await exportAudit(hub.httpUrl, out, { token: fleet.token });
    const report = verifyAudit(readExport(out), JSON.parse(readFileSync(fleet.keys.rootPath, 'utf8')));
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);

    // The rows are in PostgreSQL, where a second hub would read them.
    expect(await count(server!.url, 'devices')).toBe(1);
    expect(await count(server!.url, 'assignments')).toBe(1);
    expect(await count(server!.url, 'translog_leaves')).toBeGreaterThanOrEqual(4);
    expect(await count(server!.url, 'telemetry_devices')).toBe(1);
    // The bundle's bytes too (one row per chunk): any hub on this database can serve them.
    expect(await count(server!.url, 'bundle_chunks')).toBeGreaterThan(0);
    expect(existsSync(join(hub.options.dataDir, 'blobs', `${v1.bundleId}.zst`))).toBe(false);
  }, 180_000);
});
