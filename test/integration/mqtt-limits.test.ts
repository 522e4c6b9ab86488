/**
 * What one device can do to the broker and to other clients, on the embedded
 * aedes broker (secure mode, enrolled credentials) and on mosquitto started
 * with the README's conf and ACL (hub/mosquitto-conf.ts, hub/broker-acl.ts):
 * a packet announcing more than the client may send is cut at its length
 * field, before the payload is buffered; a payload over its channel's limit
 * (protocol/channel-limits.ts) never reaches the registry; a device cannot
 * displace another device or the hub by using their client id. On the
 * embedded broker, retain is refused on every device channel but state; on
 * mosquitto, which cannot refuse it, the hub clears an oversized retained
 * message. On mosquitto, the README's revoke steps refuse the next connection,
 * and the dynamic security plugin ends a live session.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mosquittoConf } from '../../hub/mosquitto-conf.js';
import { HUB_MQTT_USER, MqttCredentials } from '../../hub/mqtt-credentials.js';
import type { Hub } from '../../hub/hub.js';
import { DEVICE_CHANNEL_LIMITS } from '../../protocol/channel-limits.js';
import { encode } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { stateReport } from '../helpers/hub-fixtures.js';
import { startTestHub } from '../helpers/hub-harness.js';
import { hasMosquitto, startMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';
import { connectClient, PASSWD, startSecureMosquitto, tryPublish } from '../helpers/mqtt-auth.js';
import { needProgram, programsRequired } from '../helpers/programs.js';

afterAll(cleanupTempDirs);

const DEVICES = ['lim-a', 'lim-b', 'lim-c', 'lim-d', 'lim-e'] as const;

/** MQTT's variable-length "remaining length" [MQTT-2.2.3]. */
function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 128; out.push(b); } while (n > 0);
  return Buffer.from(out);
}

/** The first bytes of a QoS 0 PUBLISH that announces `length` bytes; the rest is never sent. */
function publishHead(topic: string, length: number): Buffer {
  const t = Buffer.from(topic);
  return Buffer.concat([Buffer.from([0x30]), remainingLength(length), Buffer.from([t.length >> 8, t.length & 0xff]), t, Buffer.alloc(4096, 0x20)]);
}

interface Ctx { url: string; hub: Hub; creds: Record<string, string>; embedded: boolean }

function limitCases(ctx: () => Ctx) {
  const clients: MqttClient[] = [];
  const dev = async (id: string, clientId = id) => { const c = await connectClient(ctx().url, { clientId, username: id, password: ctx().creds[id] }); clients.push(c); return c; };
  afterAll(async () => { for (const c of clients) await c.endAsync(true).catch(() => {}); });
  const phase = (id: string) => ctx().hub.store.getDevice(id)?.phase;
  let seq = 0;
  const report = (id: string, phase: 'idle' | 'fetching', pad = 0) => encode({ ...stateReport(id, { seq: ++seq, phase }), capabilities: pad ? { pad: 'x'.repeat(pad) } : {} });

  it('Oversized_packet_cut_at_length_field: a 50 MiB publish on the device\'s own state topic is cut before its payload is sent', async () => {
    const a = await dev('lim-a');
    const gone = new Promise<void>((r) => a.once('close', () => r()));
    // Only the header and 4 KiB go out: a broker that waits for the other 50 MiB keeps the socket open.
    (a.stream as Socket).write(publishHead(topics.device('lim-a', 'state'), 50 * 1024 * 1024));
    await waitFor(async () => { await Promise.race([gone, new Promise((r) => setTimeout(r, 100))]); return !a.connected; }, 'the broker to cut the oversized publish', 30_000);
    // The broker is still serving: another device reports.
    const b = await dev('lim-b');
    expect(await tryPublish(b, topics.device('lim-b', 'state'), report('lim-b', 'idle'))).toBe('acked');
    await waitFor(() => phase('lim-b') === 'idle', 'lim-b registered');
  }, 60_000);

  it('Over_channel_limit_state_refused: a state report over its channel limit never reaches the registry', async () => {
    const c = await dev('lim-c');
    expect(await tryPublish(c, topics.device('lim-c', 'state'), report('lim-c', 'idle'))).toBe('acked');
    await waitFor(() => phase('lim-c') === 'idle', 'lim-c registered');
    const big = report('lim-c', 'fetching', DEVICE_CHANNEL_LIMITS.state.maxBytes);
    expect(big.length).toBeGreaterThan(DEVICE_CHANNEL_LIMITS.state.maxBytes);
    const r = await tryPublish(c, topics.device('lim-c', 'state'), big);
    // The embedded broker refuses it (and disconnects, MQTT 3.1.1 has no negative PUBACK); mosquitto passes it and the hub refuses it.
    if (ctx().embedded) expect(r).toBe('disconnected');
    const c2 = c.connected ? c : await dev('lim-c');
    expect(await tryPublish(c2, topics.device('lim-c', 'event'), encode({ v: 1, deviceId: 'lim-c', seq: ++seq, at: Date.now(), kind: 'fetch-failed', code: 'AGENT_ERR_X' }))).toBe('acked');
    // Per-client order: the event was handled after the big report; the registry still has the small one.
    await waitFor(() => (ctx().hub.store.db.prepare('SELECT COUNT(*) FROM events WHERE device_id = ?').pluck().get('lim-c') as number) > 0, 'lim-c event');
    expect(phase('lim-c')).toBe('idle');
  }, 60_000);

  it('Client_id_takeover: a device connecting under another device\'s client id, or the hub\'s, displaces nobody', async () => {
    const { hub } = ctx();
    let hubDrops = 0;
    const onHubClose = () => { hubDrops++; };
    hub.link.client.on('close', onHubClose);
    try {
      const d = await dev('lim-d');
      let dDrops = 0;
      d.on('close', () => { dDrops++; });
      for (const victim of ['lim-d', hub.options.mqttClientId, HUB_MQTT_USER]) {
        // The embedded broker refuses the connection; mosquitto (use_username_as_clientid) puts it on lim-e's own session.
        const e = await dev('lim-e', victim).catch(() => undefined);
        if (ctx().embedded) expect(e).toBeUndefined();
        // The victims are still connected and working: lim-d's publish is acknowledged and reaches the hub.
        const want = phase('lim-d') === 'idle' ? 'fetching' : 'idle';
        expect(await tryPublish(d, topics.device('lim-d', 'state'), report('lim-d', want))).toBe('acked');
        await waitFor(() => phase('lim-d') === want, `lim-d's report after a takeover attempt as ${victim}`);
        await e?.endAsync(true);
      }
      expect(dDrops).toBe(0);
      expect(hubDrops).toBe(0);
      expect(hub.link.client.connected).toBe(true);
    } finally { hub.link.client.off('close', onHubClose); }
  }, 60_000);
}

describe('embedded aedes broker (secure)', () => {
  let hub: Hub;
  const creds: Record<string, string> = {};
  beforeAll(async () => {
    hub = await startTestHub(makeKeys(), { insecureDemo: false, mqttClientId: 'hub-lim' });
    const store = new MqttCredentials(hub.store.db);
    for (const d of DEVICES) creds[d] = store.enrollDevice(d).password;
  }, 60_000);
  afterAll(async () => { await hub?.close(); });
  limitCases(() => ({ url: hub.mqttUrl, hub, creds, embedded: true }));

  it('Retained_telemetry_refused: a device may retain its state report only; nothing else stays pinned after it leaves', async () => {
    const c = await connectClient(hub.mqttUrl, { clientId: 'lim-e', username: 'lim-e', password: creds['lim-e'] });
    const publish = (channel: 'telemetry' | 'event' | 'chunk-req', c2: MqttClient) =>
      Promise.race([c2.publishAsync(topics.device('lim-e', channel), Buffer.alloc(1000, 0x20), { qos: 1, retain: true }).then(() => 'acked', () => 'disconnected'), new Promise((r) => c2.once('close', () => r('disconnected')))]);
    let cur = c;
    for (const channel of ['telemetry', 'event', 'chunk-req'] as const) {
      expect(await publish(channel, cur)).toBe('disconnected');
      cur = await connectClient(hub.mqttUrl, { clientId: 'lim-e', username: 'lim-e', password: creds['lim-e'] });
    }
    // State is retained, as the protocol needs (the hub relearns the fleet after a restart).
    await cur.publishAsync(topics.device('lim-e', 'state'), encode({ ...stateReport('lim-e', { seq: 1 }) }), { qos: 1, retain: true });
    await cur.endAsync();
    const retained: string[] = [];
    await new Promise<void>((resolve, reject) => {
      // What aedes keeps retained (its persistence is not in its typings).
      const { persistence } = hub.broker!.aedes as unknown as { persistence: { createRetainedStream(pattern: string): NodeJS.ReadableStream } };
      const s = persistence.createRetainedStream('fc/v1/dev/lim-e/#');
      s.on('data', (p: { topic: string }) => retained.push(p.topic));
      s.on('end', () => resolve());
      s.on('error', reject);
    });
    expect(retained).toEqual([topics.device('lim-e', 'state')]);
    await hub.link.publish(topics.device('lim-e', 'state'), Buffer.alloc(0), { qos: 1, retain: true });
  }, 60_000);
});

describe.skipIf(!hasMosquitto)('mosquitto with the README conf, password and ACL files', () => {
  let hub: Hub;
  let broker: Mosquitto & { dir: string };
  const creds: Record<string, string> = Object.fromEntries(DEVICES.map((d) => [d, randomBytes(12).toString('hex')]));
  beforeAll(async () => {
    const hubSecret = randomBytes(12).toString('hex');
    broker = await startSecureMosquitto({ [HUB_MQTT_USER]: hubSecret, ...creds, 'lim-gone': 'gone-secret' });
    hub = await startTestHub(makeKeys(), { brokerUrl: broker.url, mqttUsername: HUB_MQTT_USER, mqttPassword: hubSecret, insecureDemo: false, mqttClientId: 'hub-lim' });
  }, 60_000);
  afterAll(async () => { await hub?.close(); await broker?.stop(); });
  limitCases(() => ({ url: broker.url, hub, creds, embedded: false }));

  it('the README shows exactly the mosquitto.conf lines this suite runs mosquitto with', () => {
    expect(readFileSync(new URL('../../README.md', import.meta.url), 'utf8')).toContain('```\n' + mosquittoConf() + '```');
  });

  it('Oversized_retained_cleared_on_mosquitto: a retained message over its channel limit, which mosquitto keeps, is cleared by the hub', async () => {
    const e = await connectClient(broker.url, { clientId: 'lim-e', username: 'lim-e', password: creds['lim-e'] });
    const topic = topics.device('lim-e', 'telemetry');
    const before = hub.link.stats.rejected.PROTO_ERR_MESSAGE_TOO_LARGE ?? 0;
    // 2 MiB: under mosquitto's max_packet_size, over telemetry's limit; mosquitto acknowledges and retains it.
    await e.publishAsync(topic, Buffer.alloc(2 * 1024 * 1024, 0x20), { qos: 1, retain: true });
    await e.endAsync();
    await waitFor(() => (hub.link.stats.rejected.PROTO_ERR_MESSAGE_TOO_LARGE ?? 0) > before, 'the hub to refuse it');
    // Probe what mosquitto retains through the hub's own link (a device may not read telemetry topics): retained
    // messages follow a SUBACK before the next SUBSCRIBE is handled, so the trust root arriving after the probe
    // proves no retained telemetry came with it.
    const client = hub.link.client;
    const probe = async () => {
      const got: string[] = [];
      const on = (t: string, p: Buffer, packet: { retain: boolean }) => { if (packet.retain) got.push(`${t}:${p.length}`); };
      client.on('message', on);
      try {
        await client.subscribeAsync(topic, { qos: 1 });
        await client.subscribeAsync(topics.trustRoots(), { qos: 1 });
        await waitFor(() => got.some((g) => g.startsWith(topics.trustRoots())), 'the retained trust root');
        await client.unsubscribeAsync([topic, topics.trustRoots()]);
        return !got.some((g) => g.startsWith(`${topic}:`));
      } finally { client.off('message', on); }
    };
    await waitFor(probe, 'mosquitto to hold no oversized retained telemetry', 20_000, 200);
  }, 60_000);

  it('Revoked_device_on_mosquitto: after the README\'s revoke steps (mosquitto_passwd -D, SIGHUP) the device cannot connect again', async () => {
    const c = await connectClient(broker.url, { clientId: 'lim-gone', username: 'lim-gone', password: 'gone-secret' });
    await c.endAsync();
    execFileSync(PASSWD, ['-D', join(broker.dir, 'passwd'), 'lim-gone']);
    broker.proc.kill('SIGHUP');
    // mosquitto re-reads the password file on SIGHUP, asynchronously: wait until it refuses.
    await waitFor(async () => connectClient(broker.url, { clientId: 'lim-gone', username: 'lim-gone', password: 'gone-secret' })
      .then(async (again) => { await again.endAsync(true); return false; }, (e: Error) => /not authori[sz]ed|bad user ?name or password/i.test(e.message)), 'mosquitto to refuse the revoked device', 30_000, 200);
  }, 60_000);
});

// Both come with Debian's mosquitto package; the plugin lives in the architecture's lib folder.
const CTRL = hasMosquitto ? needProgram('mosquitto_ctrl', 'mosquitto') : undefined;
const DYNSEC = ['/usr/lib', ...(existsSync('/usr/lib') ? readdirSync('/usr/lib').map((d) => join('/usr/lib', d)) : [])]
  .map((d) => join(d, 'mosquitto_dynamic_security.so')).find((p) => existsSync(p));
if (hasMosquitto && !DYNSEC && programsRequired()) throw new Error('mosquitto_dynamic_security.so is missing though mosquitto is installed (FLEETCAST_REQUIRE_PROGRAMS/CI is set): apt-get install -y mosquitto');

describe.skipIf(!hasMosquitto || !DYNSEC || !CTRL)('mosquitto with the dynamic security plugin (README "Revoking a device on mosquitto")', () => {
  it('Revoked_device_on_mosquitto_dynsec: `mosquitto_ctrl dynsec disableClient` ends the device\'s live session at once', async () => {
    const dir = tempDir('fleetcast-dynsec-');
    const admin = randomBytes(12).toString('hex');
    execFileSync(CTRL!, ['dynsec', 'init', join(dir, 'dynsec.json'), 'admin', admin], { stdio: 'ignore' });
    const broker = await startMosquitto(undefined, { dir, lines: ['allow_anonymous false', `plugin ${DYNSEC}`, `plugin_opt_config_file ${join(dir, 'dynsec.json')}`] });
    try {
      const ctrl = (...args: string[]) => execFileSync(CTRL!, ['-h', '127.0.0.1', '-p', String(broker.port), '-u', 'admin', '-P', admin, 'dynsec', ...args], { stdio: 'ignore' });
      const secret = randomBytes(12).toString('hex');
      ctrl('createClient', 'dyn-1', '-p', secret);
      const c = await connectClient(broker.url, { clientId: 'dyn-1', username: 'dyn-1', password: secret });
      const gone = new Promise<void>((r) => c.once('close', () => r()));
      ctrl('disableClient', 'dyn-1');
      await gone;
      await expect(connectClient(broker.url, { clientId: 'dyn-1', username: 'dyn-1', password: secret })).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i);
    } finally { await broker.stop(); }
  }, 60_000);
});
