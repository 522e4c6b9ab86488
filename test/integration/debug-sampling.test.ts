/**
 * Operator-controlled debug raw sampling (issue #5) against a real hub
 * (embedded aedes, SQLite file) and real agents (predict path, onnxruntime,
 * collector, MQTT): on for one device → its reports carry raw rows, the hub
 * stores and shows them, the agent's status says so; the other device sends
 * none; off stops the rows; `until` switches it off by itself; forged, foreign,
 * expired and replayed control messages are refused with codes; the limit on
 * devices in debug answers 429; rows nobody asked for are discarded and counted.
 *
 * Hub and agents share one clock (real time plus an offset) so that expiry is
 * tested by moving time, not by waiting a minute.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { connectMqtt } from '../../agent/broker-client.js';
import { TELEMETRY_DEFAULTS, TelemetryCollector } from '../../agent/telemetry/collector.js';
import { compileValidator } from '../../agent/validate.js';
import * as deviceCmd from '../../cli/commands/device.js';
import * as devicesCmd from '../../cli/commands/devices.js';
import { startHub, type Hub } from '../../hub/hub.js';
import type { ControlPayload } from '../../protocol/control.js';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { decodeTelemetry, encode } from '../../protocol/messages.js';
import type { TelemetryReport } from '../../protocol/telemetry.js';
import { topics } from '../../protocol/topics.js';
import type { KeyPair } from '../../signing/ed25519.js';
import { signEnvelope } from '../../signing/envelope.js';
import { scenarioGenerator } from '../../simulator/scenarios.js';
import { cleanupTempDirs, makeKeys, waitFor } from '../helpers/env.js';
import { connectDevice, silentLogger, stateReport } from '../helpers/hub-fixtures.js';
import { adminToken, api, startTestHub } from '../helpers/hub-harness.js';
import { publishModel, referenceRows, type PublishedModel } from '../helpers/telemetry-fleet.js';
import { newAgent, runCommand } from '../helpers/trust-fixture.js';

const FEATURES = ['x[0]', 'x[1]', 'x[2]', 'x[3]'];
let offset = 0;
const clock = () => Date.now() + offset;
let keys: ReturnType<typeof makeKeys>;
let hub: Hub;
let m: PublishedModel;
let a: Agent;
let b: Agent;
let spy: MqttClient;
/** Every telemetry report the broker carried, per device (a second subscriber beside the hub). */
const reports = new Map<string, TelemetryReport[]>();
const gen = scenarioGenerator({}, 5);

interface DebugDetail { on: boolean; rowsPerWindow: number | null; until: number | null; storedRows: number; discardedRows: number; audit: { action: string; actor: string }[]; rows: { bundleId: string; row: Record<string, unknown> }[] }
const debugOf = async (id: string) => (await api<DebugDetail>(hub, 'GET', `/v1/devices/${id}/debug`)).body;
const lastSeq = (id: string) => reports.get(id)?.at(-1)?.seq ?? -1;

/** Serve requests on the agents until each has sent `n` more telemetry reports (windows are 200 ms of real time). */
async function traffic(agents: Agent[], n = 1): Promise<void> {
  const want = new Map(agents.map((x) => [x.options.deviceId, (reports.get(x.options.deviceId)?.length ?? 0) + n]));
  await waitFor(async () => {
    for (const x of agents) await x.predict(gen.body(x.options.deviceId, m.manifest.inputs, 0, 2));
    return [...want].every(([id, k]) => (reports.get(id)?.length ?? 0) >= k);
  }, `${n} more report(s) from ${[...want.keys()].join(', ')}`, 20_000, 50);
}

function control(key: KeyPair, p: Partial<ControlPayload> = {}): Buffer {
  const now = clock();
  const payload: ControlPayload = { type: 'fleetcast.control/v1', deviceId: 'dbg-a', counter: now, issuedAt: now, expiresAt: now + 60_000, debug: { rowsPerWindow: 5, until: now + 60_000 }, ...p };
  return encode({ v: 1, control: signEnvelope(PAYLOAD_TYPES.control, encode(payload), [key]) });
}

beforeAll(async () => {
  keys = makeKeys();
  hub = await startTestHub(keys, { telemetry: { flushMs: 50, driftIntervalMs: 0 } }, { now: clock });
  m = await publishModel(hub, [keys.keys.release], { name: 'dbg', version: 1, mlp: { features: 4, seed: 3 }, reference: referenceRows(FEATURES, 500, 4) });
  spy = await connectDevice(hub.mqttUrl, 'spy');
  spy.on('message', (t, p) => {
    const id = t.split('/')[3];
    reports.set(id, [...(reports.get(id) ?? []), decodeTelemetry(p)]);
  });
  await spy.subscribeAsync(topics.allDevices('telemetry'), { qos: 1 });
  const telemetry = { ...TELEMETRY_DEFAULTS, windowMs: 200, sampleRate: 1 };
  a = newAgent(hub, keys, 'dbg-a', { telemetry, listen: '127.0.0.1:0' }, { now: clock });
  b = newAgent(hub, keys, 'dbg-b', { telemetry }, { now: clock });
  await Promise.all([a.start(), b.start()]);
  await waitFor(() => hub.store.getDevice('dbg-a') && hub.store.getDevice('dbg-b'), 'agents registered');
  expect((await api(hub, 'POST', '/v1/deployments', { name: 'dbg', version: 1, devices: ['dbg-a', 'dbg-b'], allowUnknown: true })).status).toBe(200);
  await waitFor(() => a.status().active && b.status().active, 'model installed on both agents', 30_000);
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await spy?.endAsync();
  await m?.model.release();
  await hub?.close();
  cleanupTempDirs();
});

describe('debug raw sampling', () => {
  it('on for one device: its reports carry raw rows, the hub stores and lists them, both statuses show it; the other device sends none', async () => {
    const put = await api<{ on: boolean; until: number; rowsPerWindow: number }>(hub, 'PUT', '/v1/devices/dbg-a/debug', { rowsPerWindow: 3, minutes: 5 });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ on: true, rowsPerWindow: 3 });
    expect(put.body.until).toBeGreaterThan(clock() + 4 * 60_000);
    await waitFor(() => a.status().telemetry?.debug.on, 'the agent applied the control message');

    // The device's own status: JSON and the page.
    const base = `http://${a.address!.host}:${a.address!.port}`;
    const status = await (await fetch(`${base}/v1/status`)).json() as { telemetry: { debug: unknown } };
    expect(status.telemetry.debug).toEqual({ on: true, rowsPerWindow: 3, until: put.body.until });
    const page = await (await fetch(`${base}/`)).text();
    expect(page).toMatch(/<tr id="row-debug"><th scope="row">debug sampling<\/th><td><strong>on<\/strong>: 3 raw rows per window/);
    expect(page).toContain(new Date(put.body.until).toISOString());
    expect(b.status().telemetry?.debug).toEqual({ on: false, rowsPerWindow: 0, until: null });

    const from = lastSeq('dbg-a');
    await waitFor(async () => { await traffic([a, b]); return (await debugOf('dbg-a')).storedRows >= 6; }, 'raw rows stored at the hub');
    const withRows = reports.get('dbg-a')!.filter((r) => r.seq > from && r.debug?.length);
    expect(withRows.length).toBeGreaterThanOrEqual(2);
    for (const r of withRows) {
      expect(r.debug!.length).toBeLessThanOrEqual(3);
      for (const row of r.debug!) expect(Object.keys(row).sort()).toEqual(FEATURES);
    }
    expect(reports.get('dbg-b')!.some((r) => r.debug)).toBe(false);

    const d = await debugOf('dbg-a');
    expect(d).toMatchObject({ on: true, rowsPerWindow: 3, discardedRows: 0 });
    expect(d.rows.length).toBe(Math.min(100, d.storedRows));
    expect(d.rows[0].bundleId).toBe(m.bundleId);
    expect(typeof d.rows[0].row['x[0]']).toBe('number');
    expect(d.audit[0]).toMatchObject({ action: 'on', actor: expect.stringMatching(/^admin:/) });
    expect(await debugOf('dbg-b')).toMatchObject({ on: false, storedRows: 0 });
    const list = (await api<{ devices: { id: string; debug?: unknown }[] }>(hub, 'GET', '/v1/devices')).body.devices;
    expect(list.find((x) => x.id === 'dbg-a')!.debug).toEqual({ rowsPerWindow: 3, until: put.body.until });
    expect(list.find((x) => x.id === 'dbg-b')!.debug).toBeNull();
  });

  it('off stops the rows: once the agent shows it off, no later window carries any and the hub stores no more', async () => {
    const del = await api<{ on: boolean }>(hub, 'DELETE', '/v1/devices/dbg-a/debug');
    expect(del.status).toBe(200);
    expect(del.body.on).toBe(false);
    await waitFor(() => a.status().telemetry?.debug.on === false, 'the agent turned debug off');
    await traffic([a], 1); // the window open when the off arrived may still carry rows collected before it
    const stored = (await debugOf('dbg-a')).storedRows;
    const seq = lastSeq('dbg-a');
    await traffic([a], 3);
    const later = reports.get('dbg-a')!.filter((r) => r.seq > seq);
    expect(later.length).toBeGreaterThanOrEqual(3);
    expect(later.every((r) => !r.debug)).toBe(true);
    const d = await debugOf('dbg-a');
    expect(d.storedRows).toBe(stored);
    expect(d.audit.map((x) => x.action).slice(0, 2)).toEqual(['off', 'on']);
  });

  it('refuses control messages signed by a non-hub key, for another device, expired, replayed or malformed, with codes the hub sees', async () => {
    const t = topics.control('dbg-a');
    const cases: [Buffer, string][] = [
      [control(keys.keys.release), 'AGENT_ERR_CONTROL_SIGNATURE'],
      [control(keys.keys.hub, { deviceId: 'dbg-b' }), 'AGENT_ERR_CONTROL_WRONG_DEVICE'],
      [control(keys.keys.hub, { expiresAt: clock() - 1 }), 'AGENT_ERR_CONTROL_EXPIRED'],
      [control(keys.keys.hub, { counter: 1 }), 'AGENT_ERR_CONTROL_REPLAY'],
      [control(keys.keys.hub, { debug: { rowsPerWindow: 5, until: clock() + 2 * 3_600_000 }, expiresAt: clock() + 3 * 3_600_000 }), 'AGENT_ERR_CONTROL_INVALID'],
      [Buffer.from('{"v":1,"control":'), 'AGENT_ERR_CONTROL_INVALID'],
    ];
    // Two cases share a code: each must add its own refusal, so count the hub's events of that code
    // before publishing (an earlier case's refusal must not satisfy the next one).
    const refusals = (code: string) => hub.store.listEvents('dbg-a').filter((e) => e.kind === 'security' && e.code === code).length;
    for (const [payload, code] of cases) {
      const before = refusals(code);
      await spy.publishAsync(t, payload, { qos: 1 }); // not retained: the hub's retained message stays
      await waitFor(() => refusals(code) === before + 1, `hub got a new ${code} event`);
      expect(a.status().control?.lastRefused?.code).toBe(code);
    }
    expect(a.status().telemetry?.debug.on).toBe(false);
    await expect(a.predict(gen.body('dbg-a', m.manifest.inputs, 0, 1))).resolves.toMatchObject({ model: { name: 'dbg' } });
  });

  it('switches itself off at `until` on the device and at the hub, and the retained message is cleared', async () => {
    const put = await api<{ until: number }>(hub, 'PUT', '/v1/devices/dbg-a/debug', { rowsPerWindow: 2, minutes: 1 });
    expect(put.status).toBe(200);
    await waitFor(() => a.status().telemetry?.debug.on, 'debug on');
    offset += 61_000; // both clocks pass `until`; nobody says "off"
    expect(a.status().telemetry?.debug).toEqual({ on: false, rowsPerWindow: 0, until: null });
    const d = await debugOf('dbg-a');
    expect(d.on).toBe(false);
    expect(d.audit[0].action).toBe('expired');
    const seq = lastSeq('dbg-a');
    await traffic([a], 2);
    expect(reports.get('dbg-a')!.filter((r) => r.seq > seq && r.from >= put.body.until).every((r) => !r.debug)).toBe(true);
    // The sweeper clears the expired retained message: a fresh subscriber gets nothing.
    await hub.debug.sweep();
    const probe = await connectDevice(hub.mqttUrl, 'probe');
    const got: Buffer[] = [];
    probe.on('message', (_t, p) => got.push(p));
    await probe.subscribeAsync(topics.control('dbg-a'), { qos: 1 });
    await probe.subscribeAsync(topics.assign('dbg-a'), { qos: 1 }); // its retained message arrives after any earlier one
    await waitFor(() => got.length > 0, 'the retained assignment');
    expect(got.length).toBe(1);
    await probe.endAsync();
  });

  it('a device offline when debug is turned on picks it up when it connects, also after a hub restart (retained, republished)', async () => {
    const h1 = await startTestHub(keys, {}, { now: clock });
    let h2: Hub | undefined;
    let late: Agent | undefined;
    try {
      const dev = await connectDevice(h1.mqttUrl, 'late');
      await dev.publishAsync(topics.device('dbg-late', 'state'), encode(stateReport('dbg-late')), { qos: 1 });
      await waitFor(() => h1.store.getDevice('dbg-late'), 'registered');
      await dev.endAsync();
      const on = await api<{ until: number; delivered: boolean }>(h1, 'PUT', '/v1/devices/dbg-late/debug', { rowsPerWindow: 7, minutes: 20 });
      expect(on.body.delivered).toBe(true);
      await h1.close();
      // The embedded broker forgot its retained messages; the restarted hub publishes the control message again.
      h2 = await startHub({ ...h1.options, mqttPort: 0, httpPort: 0 }, { logger: silentLogger(), now: clock });
      late = newAgent(h2, keys, 'dbg-late', { telemetry: { ...TELEMETRY_DEFAULTS, windowMs: 200 } }, { now: clock });
      await late.start();
      await waitFor(() => late!.status().telemetry?.debug.on, 'the late device applied the retained control message');
      expect(late.status().telemetry?.debug).toEqual({ on: true, rowsPerWindow: 7, until: on.body.until });
    } finally {
      await late?.stop();
      await h2?.close();
      await h1.close();
    }
  });

  it('at most maxDebugDevices at once (429 with a code), caps on rows and minutes, unknown devices and roles', async () => {
    const dev = await connectDevice(hub.mqttUrl, 'fleet');
    const ids = Array.from({ length: 11 }, (_, i) => `dbg-l${i}`);
    for (const id of ids) await dev.publishAsync(topics.device(id, 'state'), encode(stateReport(id)), { qos: 1 });
    await waitFor(() => hub.store.getDevice(ids[10]), 'devices registered');
    await dev.endAsync();
    for (const id of ids.slice(0, 10)) expect((await api(hub, 'PUT', `/v1/devices/${id}/debug`, { rowsPerWindow: 1, minutes: 1 })).status).toBe(200);
    const over = await api<{ error: { code: string } }>(hub, 'PUT', `/v1/devices/${ids[10]}/debug`, {});
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe('HUB_ERR_DEBUG_LIMIT');
    // Changing a device already in debug takes no new place; ending one frees a place.
    expect((await api(hub, 'PUT', `/v1/devices/${ids[0]}/debug`, { rowsPerWindow: 2, minutes: 2 })).status).toBe(200);
    expect((await api(hub, 'DELETE', `/v1/devices/${ids[1]}/debug`)).status).toBe(200);
    expect((await api(hub, 'PUT', `/v1/devices/${ids[10]}/debug`, {})).body).toMatchObject({ on: true, rowsPerWindow: 10 });
    for (const body of [{ minutes: 61 }, { rowsPerWindow: 101 }, { rowsPerWindow: 0 }, { minutes: 1.5 }, { extra: 1 }]) {
      const r = await api<{ error: { code: string } }>(hub, 'PUT', `/v1/devices/${ids[2]}/debug`, body);
      expect([r.status, r.body.error.code]).toEqual([400, 'HUB_ERR_BAD_REQUEST']);
    }
    expect((await api<{ error: { code: string } }>(hub, 'PUT', '/v1/devices/nobody/debug', {})).body.error.code).toBe('HUB_ERR_UNKNOWN_DEVICE');
    const auditor = (await api<{ token: string }>(hub, 'POST', '/v1/tokens', { role: 'auditor' })).body.token;
    expect((await api(hub, 'PUT', `/v1/devices/${ids[2]}/debug`, {}, auditor)).status).toBe(403);
    expect((await api(hub, 'GET', `/v1/devices/${ids[2]}/debug`, undefined, auditor)).status).toBe(200);
    for (const id of ids) await api(hub, 'DELETE', `/v1/devices/${id}/debug`);
  });

  it('rows from a device not in debug are discarded and counted; the rest of its report is ingested', async () => {
    const client = connectMqtt({ url: hub.mqttUrl, clientId: 'dbg-rogue', reconnectPeriodMs: 100, connectTimeoutMs: 5_000 });
    await waitFor(() => client.connected, 'connect');
    // A device configured locally to send raw rows, with no operator having asked for them.
    const c = new TelemetryCollector({ deviceId: 'dbg-rogue', client, now: clock, options: { sampleRate: 1, debugRowsPerWindow: 4 } });
    const v = compileValidator(m.manifest.inputs, { maxBatch: 100 });
    for (let k = 0; k < 6; k++) {
      const feeds = v(gen.body('dbg-rogue', m.manifest.inputs, 0, 1).inputs).feeds;
      c.observe({ bundleId: m.bundleId, manifest: m.manifest }, feeds, await m.model.run(feeds), 1);
    }
    await c.flush();
    await waitFor(() => hub.telemetry.debugRows.stats.discardedByDevice['dbg-rogue'], 'rows discarded');
    expect((await waitFor(() => reports.get('dbg-rogue'), 'the report on the wire'))[0].debug!.length).toBe(4);
    expect(await debugOf('dbg-rogue')).toMatchObject({ on: false, storedRows: 0, discardedRows: 4 });
    // The rest of the report was ingested (a refused report leaves no device stats).
    expect(hub.telemetry.deviceStats().find((d) => d.deviceId === 'dbg-rogue')).toMatchObject({ lastSeq: 0 });
    await client.end();
  });

  it('fleetcast device debug ID --rows N --minutes M, --show and --off; devices list shows a DEBUG column', async () => {
    // The token from the environment: a --token flag is refused (protocol/cli-args.ts).
    vi.stubEnv('FLEETCAST_TOKEN', adminToken(hub));
    onTestFinished(() => { vi.unstubAllEnvs(); });
    const hubArgs = ['--hub', hub.httpUrl];
    const on = await runCommand(deviceCmd, ['debug', 'dbg-b', ...hubArgs, '--rows', '4', '--minutes', '3']);
    expect(on.status).toBe(0);
    expect(on.out).toMatch(/^debug sampling ON for dbg-b: 4 raw rows per window until \S+Z\n$/);
    await waitFor(() => b.status().telemetry?.debug.rowsPerWindow === 4, 'dbg-b applied it');
    const list = await runCommand(devicesCmd, ['list', ...hubArgs]);
    expect(list.out).toMatch(/LAST SEEN\s+DEBUG\n/);
    expect(list.out).toMatch(/\ndbg-b\s.*\s4 rows\/window, \d+ min left\n/); // minutes by the CLI's clock; this suite's hub clock runs ahead
    expect(list.out).toMatch(/\ndbg-a\s.*\s-\n/);
    const show = await runCommand(deviceCmd, ['debug', 'dbg-b', ...hubArgs, '--show']);
    expect(show.out).toMatch(/ON for dbg-b[\s\S]*rows stored: \d+, discarded \(not requested\): 0/);
    const off = await runCommand(deviceCmd, ['debug', 'dbg-b', ...hubArgs, '--off']);
    expect(off.out).toBe('debug sampling OFF for dbg-b\n');
    await waitFor(() => b.status().telemetry?.debug.on === false, 'dbg-b off');
    await expect(runCommand(deviceCmd, ['debug', 'dbg-b', ...hubArgs, '--rows', '101'])).rejects.toMatchObject({ code: 'PROTO_ERR_INVALID_OPTION' });
  });
});
