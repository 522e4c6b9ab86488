/**
 * Who may speak on MQTT (issue #6), on the embedded aedes broker and on
 * mosquitto with the README's password and ACL files: anonymous and wrong
 * credentials are refused; a device cannot publish another device's state or
 * telemetry, nor read another device's assignment or control message, nor forge
 * a control message; the hub and a real agent
 * with their own credentials work end to end.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mosquittoAcl } from '../../hub/broker-acl.js';
import { MqttCredentials, HUB_MQTT_USER } from '../../hub/mqtt-credentials.js';
import type { Hub } from '../../hub/hub.js';
import { topics } from '../../protocol/topics.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { api, startTestHub } from '../helpers/hub-harness.js';
import { hasMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';
import { needProgram } from '../helpers/programs.js';
import { connectClient, startSecureMosquitto, tryPublish } from '../helpers/mqtt-auth.js';
import { deployedFleetOn, newAgent } from '../helpers/trust-fixture.js';

afterAll(cleanupTempDirs);

const state = (deviceId: string) => JSON.stringify({ v: 1, deviceId, seq: 1, at: 1, agentVersion: 't', runtime: 't', active: null, previous: null, phase: 'idle', target: null, progress: null, lastError: null, counter: 0, capabilities: {} });

/** mqtt.js rejects a SUBACK refusal (0x80) with the SUBACK packet; any other failure is not a refusal and fails the test. */
function subackRefusal(e: unknown): number {
  if ((e as { packet?: { granted?: unknown[] } }).packet?.granted?.[0] === 0x80) return 0x80;
  throw e;
}

/** The ACL cases shared by both brokers. `creds` gives each device's secret; `hub` sees what reaches it. */
function aclCases(ctx: () => { url: string; hub: Hub; creds: Record<string, string> }) {
  const clients: MqttClient[] = [];
  const dev = async (id: string) => { const c = await connectClient(ctx().url, { clientId: id, username: id, password: ctx().creds[id] }); clients.push(c); return c; };
  afterAll(async () => { for (const c of clients) await c.endAsync(true).catch(() => {}); });
  const devices = async () => (await api<{ devices: { id: string }[] }>(ctx().hub, 'GET', '/v1/devices')).body.devices.map((d) => d.id).sort();

  it('refuses anonymous clients and a wrong secret', async () => {
    await expect(connectClient(ctx().url, { clientId: 'anon' })).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i);
    await expect(connectClient(ctx().url, { clientId: 'dev-a', username: 'dev-a', password: 'wrong' })).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i);
  });

  it('a device publishing another device\'s state or telemetry is refused; its own state gets through', async () => {
    const a = await dev('dev-a');
    await tryPublish(a, topics.device('dev-b', 'state'), state('dev-b'));
    const a2 = await dev('dev-a'); // aedes disconnects on a refused publish; mosquitto drops it silently
    // The forged telemetry is unparseable JSON: had it reached the hub, PROTO_ERR_INVALID_JSON would count it.
    const rejected = (code: string) => ctx().hub.link.stats.rejected[code] ?? 0;
    const invalidJson = rejected('PROTO_ERR_INVALID_JSON');
    const invalidMessage = rejected('PROTO_ERR_INVALID_MESSAGE');
    await tryPublish(a2, topics.device('dev-b', 'telemetry'), '{not json');
    const a3 = a2.connected ? a2 : await dev('dev-a');
    // Its own (schema-invalid) telemetry does reach the hub, after the forged one in per-client order.
    expect(await tryPublish(a3, topics.device('dev-a', 'telemetry'), '{}')).toBe('acked');
    await waitFor(() => rejected('PROTO_ERR_INVALID_MESSAGE') > invalidMessage, 'dev-a\'s own telemetry to reach the hub');
    expect(rejected('PROTO_ERR_INVALID_JSON')).toBe(invalidJson);
    expect(await tryPublish(a3, topics.device('dev-a', 'state'), state('dev-a'))).toBe('acked');
    // Per-client order: dev-a's own state arrived, so the earlier forged one was handled before it: it was dropped.
    await waitFor(async () => (await devices()).includes('dev-a'), 'dev-a registered');
    expect(await devices()).not.toContain('dev-b');
  });

  it('a device cannot read another device\'s assignment', async () => {
    const a = await dev('dev-a');
    const got: string[] = [];
    a.on('message', (t) => got.push(t));
    // dev-b's filter first: aedes refuses it in the SUBACK (0x80); either way a retained message would follow its
    // SUBACK before the next SUBSCRIBE is handled, so dev-a's own arriving proves dev-b's was not sent.
    const other = await a.subscribeAsync(topics.assign('dev-b'), { qos: 1 }).then((g) => g[0].qos, subackRefusal);
    expect([0x80, 1]).toContain(other);
    expect((await a.subscribeAsync(topics.assign('dev-a'), { qos: 1 }))[0].qos).toBe(1);
    await waitFor(() => got.includes(topics.assign('dev-a')), 'own assignment');
    expect(got).not.toContain(topics.assign('dev-b'));
  });

  it('only the hub publishes control messages (debug sampling, issue #5); a device reads only its own', async () => {
    const { hub } = ctx();
    for (const id of ['dev-a', 'dev-b']) await hub.link.publish(topics.control(id), Buffer.from(`hub:${id}`), { qos: 1, retain: true });
    // A forged control message on its own topic: refused (aedes disconnects, mosquitto drops it), so the hub's stays retained.
    await tryPublish(await dev('dev-a'), topics.control('dev-a'), 'forged');
    const a = await dev('dev-a');
    const got: [string, string][] = [];
    a.on('message', (t, p) => got.push([t, p.toString()]));
    const other = await a.subscribeAsync(topics.control('dev-b'), { qos: 1 }).then((g) => g[0].qos, subackRefusal);
    expect([0x80, 1]).toContain(other);
    expect((await a.subscribeAsync(topics.control('dev-a'), { qos: 1 }))[0].qos).toBe(1);
    await waitFor(() => got.length > 0, 'own control message');
    expect(got).toEqual([[topics.control('dev-a'), 'hub:dev-a']]);
    for (const id of ['dev-a', 'dev-b']) await hub.link.publish(topics.control(id), Buffer.alloc(0), { qos: 1, retain: true });
  });
}

describe('embedded aedes broker (secure by default)', () => {
  let hub: Hub;
  const creds: Record<string, string> = {};
  beforeAll(async () => {
    const keys = makeKeys();
    hub = await startTestHub(keys, { insecureDemo: false });
    const store = new MqttCredentials(hub.store.db);
    for (const d of ['dev-a', 'dev-b']) creds[d] = store.enrollDevice(d).password;
    // A real agent with its credential installs end to end (its subscriptions are all allowed), and dev-a/dev-b get assignments.
    await deployedFleetOn(hub, keys, ['dev-c'], { credentials: store, also: ['dev-a', 'dev-b'] });
  }, 60_000);
  afterAll(async () => { await hub?.close(); });
  aclCases(() => ({ url: hub.mqttUrl, hub, creds }));

  it('refuses a device connecting under a client id that is not its own, and the hub user name cannot be enrolled', async () => {
    await expect(connectClient(hub.mqttUrl, { clientId: 'dev-b', username: 'dev-a', password: creds['dev-a'] })).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i);
    expect(() => new MqttCredentials(hub.store.db).enrollDevice(HUB_MQTT_USER)).toThrow(expect.objectContaining({ code: 'HUB_ERR_BAD_REQUEST' }));
  });
});

describe.skipIf(!hasMosquitto)('mosquitto with the README password and ACL files', () => {
  let hub: Hub;
  let broker: Mosquitto;
  const creds: Record<string, string> = { 'dev-a': randomBytes(12).toString('hex'), 'dev-b': randomBytes(12).toString('hex'), 'dev-c': randomBytes(12).toString('hex') };
  beforeAll(async () => {
    const hubSecret = randomBytes(12).toString('hex');
    broker = await startSecureMosquitto({ [HUB_MQTT_USER]: hubSecret, ...creds });
    const keys = makeKeys();
    hub = await startTestHub(keys, { brokerUrl: broker.url, mqttUsername: HUB_MQTT_USER, mqttPassword: hubSecret, insecureDemo: false });
    await deployedFleetOn(hub, keys, ['dev-c'], { passwords: creds, also: ['dev-a', 'dev-b'] });
  }, 60_000);
  afterAll(async () => { await hub?.close(); await broker?.stop(); });
  aclCases(() => ({ url: broker.url, hub, creds }));

  it('the README shows exactly the ACL file this suite runs mosquitto with', () => {
    expect(readFileSync(new URL('../../README.md', import.meta.url), 'utf8')).toContain('```\n' + mosquittoAcl() + '```');
  });
});

const OPENSSL = needProgram('openssl', 'openssl');

describe.skipIf(!OPENSSL)('TLS (mqtts://) on the embedded broker', () => {
  it('serves mqtts with the given certificate and key; the hub and an enrolled device connect over TLS, plain MQTT does not', async () => {
    const dir = tempDir('fleetcast-tls-');
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync(OPENSSL!, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    const keys = makeKeys();
    const hub = await startTestHub(keys, { insecureDemo: false, mqttTlsCert: cert, mqttTlsKey: key });
    try {
      expect(hub.mqttUrl).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
      expect(hub.link.client.connected).toBe(true);
      const secret = new MqttCredentials(hub.store.db).enrollDevice('dev-tls').password;
      const c = await connectClient(hub.mqttUrl, { clientId: 'dev-tls', username: 'dev-tls', password: secret, ca: readFileSync(cert) });
      expect(await tryPublish(c, topics.device('dev-tls', 'state'), state('dev-tls'))).toBe('acked');
      await c.endAsync(true);
      // A real agent with its credential and the CA (mqttCaPath) reports over TLS.
      const agentSecret = new MqttCredentials(hub.store.db).enrollDevice('dev-tls-agent').password;
      const agent = newAgent(hub, keys, 'dev-tls-agent', { mqttUsername: 'dev-tls-agent', mqttPassword: agentSecret, mqttCaPath: cert });
      await agent.start();
      try {
        await waitFor(() => hub.store.getDevice('dev-tls-agent'), 'the agent registered over mqtts');
      } finally { await agent.stop(); }
      // Without the CA the self-signed certificate is refused; plain MQTT on the TLS port gets no CONNACK.
      await expect(connectClient(hub.mqttUrl, { clientId: 'dev-tls', username: 'dev-tls', password: secret })).rejects.toThrow(/self.signed|certificate/i);
      await expect(connectClient(hub.mqttUrl.replace('mqtts:', 'mqtt:'), { clientId: 'dev-tls', username: 'dev-tls', password: secret, connectTimeout: 1_000 })).rejects.toThrow();
    } finally { await hub.close(); }
  });
});
