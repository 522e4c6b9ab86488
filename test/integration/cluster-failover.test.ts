/**
 * Failover of a cluster of hubs, on the system as it runs: two compiled `fleetcast hub --cluster` processes
 * sharing one PostgreSQL store (started here with initdb/pg_ctl) and one mosquitto (started here), API
 * authentication on, and 200 simulated devices (the simulator: real agent code, one process). The leader is
 * SIGKILLed in the middle of a three-ring rollout: the other hub takes over, the rollout completes, every
 * device ends on the new version, no assignment counter is ever issued twice (checked on every assignment
 * mosquitto carried), and the auditor's verification of the log passes, consistent with the checkpoint taken
 * before the kill. Then the follower is killed, and mosquitto restarted: the fleet converges again.
 *
 * mosquitto runs with anonymous access here (its ACL is tested in mqtt-acl.test.ts); the hubs' API checks tokens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../cli/hub-client.js';
import { exportAudit } from '../../cli/audit-export.js';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { decodeAssignMessage } from '../../protocol/messages.js';
import { readExport } from '../../signing/audit-export-format.js';
import { verifyAudit } from '../../signing/audit-verify.js';
import { verifyForRole } from '../../signing/envelope.js';
import { loadRootText } from '../../signing/root.js';
import { startFleet, type Fleet } from '../../simulator/fleet.js';
import { TELEMETRY_DEFAULTS } from '../../agent/telemetry/collector.js';
import { distFile } from '../helpers/build-cli.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { makeBundle } from '../helpers/hub-harness.js';
import { hasMosquitto, startMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';
import { hasPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';

afterAll(cleanupTempDirs);

const DEVICES = 200;

interface HubProc { name: string; proc: ChildProcess; url: string; data: string; err(): string }
interface Status { state: string; ring: string; rings: { name: string; counts: Record<string, number> }[] }

describe.skipIf(!hasPostgres || !hasMosquitto)('cluster failover: two compiled hubs, PostgreSQL, mosquitto, 200 devices', () => {
  const keys = makeKeys();
  const root = loadRootText(readFileSync(keys.rootPath, 'utf8'));
  let server: TestPostgres;
  let broker: Mosquitto;
  let fleet: Fleet;
  let token = '';
  let watcher: mqtt.MqttClient;
  const hubs = new Map<string, HubProc>();
  /** Every assignment mosquitto carried: device → counter → what it assigned. */
  const seen = new Map<string, Map<number, string>>();
  const reused: string[] = [];

  async function startHub(name: string): Promise<HubProc> {
    const port = await freePort();
    const data = tempDir(`fleetcast-${name}-`);
    let out = '';
    let err = '';
    const proc = spawn(process.execPath, [distFile('cli/fleetcast.js'), 'hub', '--data', data, '--keys', keys.dir, '--http-port', String(port),
      '--broker', broker.url, '--store', server.url, '--cluster', '--mqtt-client-id', name, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    proc.stderr!.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-20_000); });
    await waitFor(() => {
      if (proc.exitCode !== null) throw new Error(`${name} exited ${proc.exitCode}: ${err}`);
      return /api http/.test(out);
    }, `${name} to start`, 60_000);
    const h: HubProc = { name, proc, url: `http://127.0.0.1:${port}`, data, err: () => err };
    hubs.set(name, h);
    return h;
  }

  async function kill(h: HubProc): Promise<void> {
    if (h.proc.exitCode !== null || h.proc.signalCode !== null) return;
    const gone = new Promise((r) => h.proc.once('exit', r));
    h.proc.kill('SIGKILL');
    await gone;
    hubs.delete(h.name);
  }

  async function leader(): Promise<{ epoch: number; hub: HubProc | undefined }> {
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    try {
      const r = await c.query<{ epoch: string; url: string; live: boolean }>('SELECT epoch::text, url, expires_at > clock_timestamp() AS live FROM hub_leader');
      const row = r.rows[0];
      return { epoch: row && row.live ? Number(row.epoch) : 0, hub: row && row.live ? [...hubs.values()].find((h) => h.url === row.url) : undefined };
    } finally { await c.end(); }
  }

  const client = () => new HubClient([...hubs.values()][0]!.url, token);

  /** Telemetry reports the agents sent (acknowledged by the broker) and the reports the hubs merged into the store. */
  const sentReports = () => fleet.agents.reduce((t, a) => t + (a.status().telemetry?.sent ?? 0), 0);
  async function storedReports(): Promise<number> {
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    try {
      const r = await c.query<{ data: string }>("SELECT data FROM telemetry_fine WHERE key = 'meta'");
      return r.rows.reduce((t, row) => t + ((JSON.parse(row.data) as { reports?: number }).reports ?? 0), 0);
    } finally { await c.end(); }
  }

  beforeAll(async () => {
    server = await startPostgres();
    broker = await startMosquitto();
    const a = await startHub('hub-a');
    token = readFileSync(join(a.data, 'admin.token'), 'utf8').trim();
    await startHub('hub-b');
    // A watcher on mosquitto sees every assignment either hub publishes (retained or not).
    watcher = await mqtt.connectAsync(broker.url, { clientId: 'failover-watcher', protocolVersion: 4 });
    watcher.on('message', (_topic, payload) => {
      if (payload.length === 0) return;
      const msg = decodeAssignMessage(payload);
      const a = JSON.parse(verifyForRole(root, 'hub', msg.assignment, PAYLOAD_TYPES.assignment, 'assignment').toString('utf8')) as { deviceId: string; counter: number; bundleId: string; rolloutId: string | null; ring: string | null };
      const what = `${a.bundleId}/${a.rolloutId}/${a.ring}`;
      const byCounter = seen.get(a.deviceId) ?? new Map<number, string>();
      const before = byCounter.get(a.counter);
      if (before !== undefined && before !== what) reused.push(`${a.deviceId}#${a.counter}: ${before} then ${what}`);
      byCounter.set(a.counter, what);
      seen.set(a.deviceId, byCounter);
    });
    await watcher.subscribeAsync('fc/v1/dev/+/assign', { qos: 1 });
    fleet = await startFleet({ brokerUrl: broker.url, agents: DEVICES, rootPath: keys.rootPath, dataDir: tempDir('fleetcast-failover-fleet-'), startConcurrency: 50, agentOptions: { heartbeatMs: 2_000, chunkTimeoutMs: 1_000, telemetry: { ...TELEMETRY_DEFAULTS, windowMs: 2_000, sampleRate: 1 } } });
  }, 180_000);

  afterAll(async () => {
    await fleet?.stop();
    await watcher?.endAsync();
    for (const h of [...hubs.values()]) await kill(h);
    await broker?.stop();
    await server?.close();
  });

  it('Killed_leader_mid_rollout: the other hub takes over, the three-ring rollout completes, no counter reused, the audit verifies', async () => {
    const api = client();
    await waitFor(async () => (await leader()).hub !== undefined, 'a leader', 60_000);
    for (const v of [1, 2]) await api.publish((await makeBundle([keys.keys.release], { version: v, model: { seed: v } })).path);
    await waitFor(async () => (await api.devices()).devices.length === DEVICES, 'every device registered', 60_000);
    await api.deploy({ name: 'churn', version: 1, all: true });
    await fleet.waitForVersion('churn', 1, 60_000);

    const spec = { rings: [{ name: 'canary', percent: 10 }, { name: 'wider', percent: 50 }, { name: 'all', percent: 100 }], gates: { minRequests: 0, soak: '0s', maxLatencyRatio: 1000 } };
    // Predictions, so that every device reports a telemetry window every 2 s through the rollout and the kill.
    const drive = fleet.drive({ concurrency: 8 });
    const { id } = await api.startRollout<{ id: string }>({ name: 'churn', version: 2, spec, autoPromote: true });
    // Mid-rollout: the canary has passed and the wider ring is under way.
    await waitFor(async () => (await api.rollout<Status>(id)).ring !== 'canary', 'the rollout to reach its second ring', 60_000);
    const mid = await api.rollout<Status>(id);
    expect(mid.state).not.toBe('completed');
    const before = readExport(await (async () => { const d = tempDir('fleetcast-audit-before-'); await exportAudit(api.baseUrl, d, { token }); return d; })());
    const lastBefore = before.checkpoints[before.checkpoints.length - 1]!;

    const { epoch, hub: dead } = await leader();
    expect(dead).toBeDefined();
    // What was in flight: the reports the agents had sent in the 5 s before the kill (the dead hub held its share
    // of them in its inbound queue and unflushed accumulators, telemetry.flushMs = 1 s, on a loaded machine).
    const sentBefore = sentReports();
    await new Promise((r) => setTimeout(r, 5_000));
    const inFlight = sentReports() - sentBefore;
    const killedAt = Date.now();
    await kill(dead!);
    const survivor = [...hubs.values()][0]!;
    await waitFor(async () => (await leader()).hub === survivor, 'the surviving hub to lead', 60_000);
    // Printed, not asserted (timings on a loaded machine): the design bound is leaseMs + renewMs + one statement.
    console.log(`failover: ${survivor.name} leads ${Date.now() - killedAt} ms after the SIGKILL of ${dead!.name} (lease 5000 ms, renew 1000 ms, polled every 20 ms)`);
    // A newer epoch than the dead leader's; not necessarily the next one: on a loaded machine a leader that misses
    // its renewals steps down and is elected again (a CI run saw epoch + 2), which is the lease doing its job.
    expect((await leader()).epoch).toBeGreaterThan(epoch);

    const api2 = client();
    await waitFor(async () => (await api2.rollout<Status>(id)).state === 'completed', 'the rollout to complete under the new leader', 90_000)
      .catch(async (e: unknown) => { throw new Error(`${(e as Error).message}: ${JSON.stringify(await api2.rollout(id))} ${survivor.err().slice(-3000)}`); });
    await fleet.waitForVersion('churn', 2, 60_000);
    expect(fleet.versions()).toEqual({ 'churn@2': DEVICES });
    expect(reused).toEqual([]);

    // Telemetry: once the agents stop and their last windows are stored, none was counted twice, and those
    // lost are at most what was in flight at the kill (sent in the 5 s before it).
    await drive.stop();
    await new Promise((r) => setTimeout(r, 4_000)); // the last 2 s windows close and are sent
    let stored = -1;
    await waitFor(async () => { const now = await storedReports(); const same = now === stored; stored = now; return same; }, 'the stored telemetry to settle', 60_000, 1_500);
    const sent = sentReports();
    const health = await api2.health() as { messages: { handled: Record<string, number>; rejected: Record<string, number> } };
    console.log(`failover telemetry: ${sent} reports sent, ${stored} stored, ${sent - stored} lost; ${inFlight} sent in the 5 s before the kill; survivor handled ${JSON.stringify(health.messages)}`);
    expect(sent).toBeGreaterThan(DEVICES);
    expect(stored).toBeLessThanOrEqual(sent);
    expect(sent - stored).toBeLessThanOrEqual(inFlight);
    const v2 = (await api2.bundles()).bundles.find((b) => b.version === 2)!.bundleId;
    for (const d of (await api2.devices()).devices) expect(d.assignment?.bundleId).toBe(v2);

    const after = tempDir('fleetcast-audit-after-');
    await exportAudit(survivor.url, after, { token });
    const report = verifyAudit(readExport(after), JSON.parse(readFileSync(keys.rootPath, 'utf8')), { knownCheckpoints: [{ name: 'before the kill', text: lastBefore.checkpoint }] });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
  }, 300_000);

  it('Killed_follower_then_broker_restarted: the fleet converges on a new deployment', async () => {
    // Back to two hubs; kill the one that does not lead.
    await startHub('hub-c');
    const { hub: lead } = await leader();
    const follower = [...hubs.values()].find((h) => h !== lead)!;
    await kill(follower);
    // mosquitto restarts without persistence: every retained message and every session is gone.
    const port = broker.port;
    await broker.stop();
    broker = await startMosquitto(port);
    const api = client();
    await api.publish((await makeBundle([keys.keys.release], { version: 3, model: { seed: 3 } })).path);
    await api.deploy({ name: 'churn', version: 3, all: true });
    await fleet.waitForVersion('churn', 3, 120_000);
    expect(fleet.versions()).toEqual({ 'churn@3': DEVICES });
    expect(reused).toEqual([]);
  }, 300_000);
});
