/**
 * A device's live MQTT session on the embedded broker (secure mode, real
 * credentials from enrollment) ends when its credential does:
 * `fleetcast device revoke` and `fleetcast device enroll --rotate`, run as
 * separate processes against the hub's API as an operator would, cut a
 * device that is already connected, and what it publishes after the change
 * never reaches the registry. No device can displace another device or the hub
 * by connecting under their client id (for mosquitto see mqtt-limits.test.ts).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import type { Hub } from '../../hub/hub.js';
import { encode } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { buildCli } from '../helpers/build-cli.js';
import { cleanupTempDirs, makeKeys, waitFor } from '../helpers/env.js';
import { stateReport } from '../helpers/hub-fixtures.js';
import { startTestHub } from '../helpers/hub-harness.js';
import { connectClient, tryPublish } from '../helpers/mqtt-auth.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

afterAll(cleanupTempDirs);

const closed = (c: MqttClient) => new Promise<void>((r) => { if (c.disconnected || !c.connected) r(); else c.once('close', () => r()); });

describe('embedded broker: a live session ends with its credential', () => {
  let hub: Hub;
  const clients: MqttClient[] = [];
  const device = (cmd: 'revoke' | 'enroll', id: string) =>
    run(process.execPath, [join(ROOT, 'cli/dist/fleetcast.js'), 'device', cmd, id, '--hub', hub.httpUrl, ...(cmd === 'enroll' ? ['--json', '--rotate'] : [])],
      { cwd: ROOT, timeout: 60_000, env: { ...process.env, FLEETCAST_TOKEN: '', FLEETCAST_TOKEN_FILE: join(hub.options.dataDir, 'admin.token') } });
  const connect = async (id: string, password: string, clientId = id) => { const c = await connectClient(hub.mqttUrl, { clientId, username: id, password }); clients.push(c); return c; };
  const phase = (id: string) => hub.store.getDevice(id)?.phase;

  beforeAll(async () => {
    await buildCli(ROOT);
    hub = await startTestHub(makeKeys(), { insecureDemo: false, mqttClientId: 'hub-main' });
  }, 180_000);
  afterAll(async () => { for (const c of clients) await c.endAsync(true).catch(() => {}); await hub?.close(); });

  it('Revoked_device_loses_its_live_session: after `device revoke` its publish is refused, it is disconnected, and it cannot come back', async () => {
    const secret = new MqttCredentials(hub.store.db).enrollDevice('dev-r').password;
    const c = await connect('dev-r', secret);
    expect((await c.subscribeAsync(topics.assign('dev-r'), { qos: 1 }))[0].qos).toBe(1);
    expect(await tryPublish(c, topics.device('dev-r', 'state'), encode(stateReport('dev-r', { seq: 1, phase: 'idle' })))).toBe('acked');
    await waitFor(() => phase('dev-r') === 'idle', 'dev-r registered');

    await device('revoke', 'dev-r');
    // Whether the broker's poll has already cut it or this publish is the first thing it sees, the report is refused.
    if (c.connected) expect(await tryPublish(c, topics.device('dev-r', 'state'), encode(stateReport('dev-r', { seq: 2, phase: 'fetching' })))).toBe('disconnected');
    await closed(c);
    await expect(connect('dev-r', secret)).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i);
    expect(phase('dev-r')).toBe('idle');
  }, 60_000);

  it('Idle_revoked_device_is_cut: a device that only listens is disconnected by the revocation itself', async () => {
    const secret = new MqttCredentials(hub.store.db).enrollDevice('dev-i').password;
    const c = await connect('dev-i', secret);
    await c.subscribeAsync(topics.assign('dev-i'), { qos: 1 });
    await device('revoke', 'dev-i');
    // A generous wait on the event, not a timing assertion: the broker polls for credential changes.
    await waitFor(() => !c.connected, 'the revoked listener to be disconnected', 30_000);
  }, 60_000);

  it('Rotated_credential_ends_the_old_session: re-enrolling cuts the session of the old secret; the new secret works', async () => {
    const old = new MqttCredentials(hub.store.db).enrollDevice('dev-k').password;
    const c = await connect('dev-k', old);
    expect(await tryPublish(c, topics.device('dev-k', 'state'), encode(stateReport('dev-k', { seq: 1, phase: 'idle' })))).toBe('acked');
    await waitFor(() => phase('dev-k') === 'idle', 'dev-k registered');
    const fresh = (JSON.parse((await device('enroll', 'dev-k')).stdout) as { mqttPassword: string }).mqttPassword;
    if (c.connected) expect(await tryPublish(c, topics.device('dev-k', 'state'), encode(stateReport('dev-k', { seq: 2, phase: 'fetching' })))).toBe('disconnected');
    await closed(c);
    await expect(connect('dev-k', old)).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i);
    expect(phase('dev-k')).toBe('idle');
    const n = await connect('dev-k', fresh);
    expect(await tryPublish(n, topics.device('dev-k', 'state'), encode(stateReport('dev-k', { seq: 3, phase: 'fetching' })))).toBe('acked');
    await waitFor(() => phase('dev-k') === 'fetching', 'the new credential reports');
  }, 60_000);

  it('Device_takes_hub_client_id: a device enrolled under the hub\'s client id is refused; the hub stays connected', async () => {
    let hubDrops = 0;
    hub.link.client.on('close', () => { hubDrops++; });
    // The operator chose --mqtt-client-id hub-main; a device enrolled under that id must not displace the hub.
    const secret = new MqttCredentials(hub.store.db).enrollDevice('hub-main').password;
    await expect(connect('hub-main', secret)).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i);
    // And another device's client id with its own credential: refused as before.
    const mine = new MqttCredentials(hub.store.db).enrollDevice('dev-t').password;
    await expect(connect('dev-t', mine, 'dev-k')).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i);
    // The hub's link is still the one that connected at start, and still works: a report reaches the registry.
    const t = await connect('dev-t', mine);
    expect(await tryPublish(t, topics.device('dev-t', 'state'), encode(stateReport('dev-t', { seq: 1, phase: 'idle' })))).toBe('acked');
    await waitFor(() => phase('dev-t') === 'idle', 'the hub still hears devices');
    expect(hubDrops).toBe(0);
    expect(hub.link.client.connected).toBe(true);
  }, 60_000);
});
