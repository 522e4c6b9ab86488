/**
 * Two real hubs in one cluster (hub/cluster/) on one PostgreSQL store (which also holds the leader lease)
 * and one mosquitto: exactly one hub runs the leader-only work; a follower forwards single-writer API calls
 * (publish, deploy, rollouts, debug) to the leader's advertised URL and relays its answer; a follower's own
 * single-writer write is refused by the epoch check in its transaction; a hub deposed by a higher epoch stops
 * its leader duties at once; when the leader stops, the other takes over.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../hub/hub.js';
import { ANSWERED_BY_HEADER, FORWARDED_HEADER } from '../../hub/cluster/forward.js';
import { cleanupTempDirs, makeKeys, waitFor } from '../helpers/env.js';
import { adminToken, makeBundle, startTestHub } from '../helpers/hub-harness.js';
import { hasMosquitto, startMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';
import { hasPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { stateReport } from '../helpers/hub-fixtures.js';
import mqtt from 'mqtt';
import { deviceFilter } from '../../hub/mqtt-link.js';
import { encode, type DeviceEvent } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { TelemetryWindow } from '../../agent/telemetry/window.js';
import { encodeTelemetryBinary } from '../../protocol/telemetry-binary.js';
import { compilePlan } from '../../protocol/telemetry-plan.js';

afterAll(cleanupTempDirs);

const CLUSTER = { leaseMs: 3_000, renewMs: 500 } as const;
const engineTimer = (h: Hub) => (h.rollouts.engine as unknown as { timer?: unknown }).timer;

describe.skipIf(!hasPostgres || !hasMosquitto)('two hubs on one PostgreSQL store, one leader', () => {
  const keys = makeKeys();
  let server: TestPostgres;
  let broker: Mosquitto;
  let url: string;
  let token: string;
  const hubs: Hub[] = [];
  const start = async (name: string) => {
    const h = await startTestHub(keys, { insecureDemo: false, brokerUrl: broker.url, storeUrl: url, mqttClientId: name, cluster: CLUSTER });
    hubs.push(h);
    return h;
  };
  beforeAll(async () => {
    server = await startPostgres();
    broker = await startMosquitto();
    url = server.url;
    token = adminToken(await start('hub-a'));
    await start('hub-b');
  });
  afterAll(async () => {
    for (const h of hubs) await h.close().catch(() => {});
    await broker?.stop();
    await server?.close();
  });

  const leaderOf = () => hubs.find((h) => h.leadership.epoch !== null);
  const followerOf = () => hubs.find((h) => h.leadership.epoch === null);
  const call = async (h: Hub, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const bin = body instanceof Uint8Array;
    const res = await fetch(`${h.httpUrl}${path}`, {
      method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': bin ? 'application/octet-stream' : 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: bin ? (body as unknown as BodyInit) : JSON.stringify(body) }),
    });
    return { status: res.status, by: res.headers.get(ANSWERED_BY_HEADER), body: (await res.json()) as Record<string, unknown> & { error?: { code: string } } };
  };

  it('exactly one hub leads, and only it runs the leader duties', async () => {
    const leader = await waitFor(() => leaderOf(), 'a leader', 30_000);
    expect(hubs.filter((h) => h.leadership.epoch !== null)).toHaveLength(1);
    expect(leader.leadership.epoch).toBe(1);
    expect(engineTimer(leader)).toBeDefined();
    expect(engineTimer(followerOf()!)).toBeUndefined();
    // The leader logged the root chain once elected; every hub reads the same log.
    expect(followerOf()!.translog.log.latest()?.size).toBeGreaterThan(0);
  });

  it('a follower forwards a publish and a deploy to the leader and relays its answers', async () => {
    const leader = leaderOf()!;
    const follower = followerOf()!;
    const b = await makeBundle([keys.keys.release], { chunkSize: 16_384 });
    const pub = await call(follower, 'POST', '/v1/bundles', readFileSync(b.path));
    expect(pub.status).toBe(201);
    expect(pub.body.bundleId).toBe(b.bundleId);
    expect(pub.by).toBe(leader.httpUrl);
    const dep = await call(follower, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: ['dev-1'], allowUnknown: true });
    expect(dep.status).toBe(200);
    expect(dep.by).toBe(leader.httpUrl);
    expect(follower.store.getAssignment('dev-1')?.counter).toBe(1);
    // Reads are answered by the hub asked; the follower still authenticates the caller itself.
    const list = await call(follower, 'GET', '/v1/bundles');
    expect([list.status, list.by]).toEqual([200, null]);
    const anon = await fetch(`${follower.httpUrl}/v1/deployments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(anon.status).toBe(401);
    expect(anon.headers.get(ANSWERED_BY_HEADER)).toBeNull();
  });

  it('a follower\'s own single-writer write is refused by the epoch check in its transaction', async () => {
    const follower = followerOf()!;
    const before = follower.store.getAssignment('dev-1')!.counter;
    expect(() => follower.store.issueAssignments([{ deviceId: 'dev-1', bundleId: follower.store.getAssignment('dev-1')!.bundleId, rolloutId: null, ring: null }], () => { throw new Error('never signed'); }))
      .toThrow(expect.objectContaining({ code: 'HUB_ERR_NOT_LEADER' }));
    expect(follower.store.getAssignment('dev-1')!.counter).toBe(before);
    expect(() => follower.translog.log.append({ kind: 'root', version: 99, envelope: { payloadType: 'x', payload: '', signatures: [] } } as never, 'v99'))
      .toThrow(expect.objectContaining({ code: 'HUB_ERR_NOT_LEADER' }));
  });

  it('telemetry ingested by two hubs into the same cells: every report counted, none overwritten by the other hub', async () => {
    const [a, b] = hubs;
    const bundle = a!.store.getBundleByVersion('churn', 1)!;
    const plan = compilePlan(bundle.id, bundle.manifest);
    const now = Date.now();
    const report = (deviceId: string, seq: number) => encodeTelemetryBinary({ v: 1, deviceId, seq, to: now, part: 0, parts: 1, sampleRate: 1, dropped: 0, ...new TelemetryWindow(plan, now - 1_000).body() });
    const stored = async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try { return (await c.query<{ data: string }>("SELECT data FROM telemetry_fine WHERE key = 'meta'")).rows.reduce((t, r) => t + ((JSON.parse(r.data) as { reports?: number }).reports ?? 0), 0); } finally { await c.end(); }
    };
    const before = await stored();
    // As the broker's shared subscription does: one device's reports alternate between the hubs, in rounds with flushes between.
    for (let round = 0; round < 3; round++) {
      for (let s = 1; s <= 10; s++) (s % 2 ? a! : b!).telemetry.handleMessage('dev-1', report('dev-1', round * 100 + s));
      await a!.telemetry.settle();
      await b!.telemetry.settle();
    }
    expect(await stored() - before).toBe(30);
  });

  /**
   * A device publishing on one channel whose messages the test hands to the hub it picks: the broker picks the
   * hub of a shared subscription, so only that hub stays subscribed to the channel while it sends (the hubs' own
   * clients, the same filter they subscribe at start). `send` returns once that hub has handled the message.
   */
  const deviceVia = async (device: string, channel: 'state' | 'event') => {
    const filter = deviceFilter(channel, 'fleetcast');
    const pub = await mqtt.connectAsync(broker.url, { clientId: `${device}-device`, protocolVersion: 4 });
    return {
      async send(h: Hub, payload: Uint8Array, seq: number) {
        const handled = h.link.stats.handled[channel] ?? 0;
        for (const o of hubs) if (o !== h) await o.link.client.unsubscribeAsync(filter);
        await h.link.client.subscribeAsync(filter, { qos: 1 });
        await pub.publishAsync(topics.device(device, channel), Buffer.from(payload), { qos: 1 });
        await waitFor(() => (h.link.stats.handled[channel] ?? 0) > handled, `hub ${hubs.indexOf(h)} to handle seq ${seq}`, 30_000);
        h.store.flushReports();
      },
      async end() {
        await pub.endAsync();
        for (const h of hubs) await h.link.client.subscribeAsync(filter, { qos: 1 });
      },
    };
  };

  it('Late_state_report_across_hubs: a state report with a lower seq, delivered to the second hub after the first stored a newer one, leaves the newer state', async () => {
    const [a, b] = hubs;
    const device = 'dev-order';
    const dev = await deviceVia(device, 'state');
    const send = (h: Hub, seq: number, phase: 'fetching' | 'committed') => dev.send(h, encode(stateReport(device, { seq, phase })), seq);
    try {
      await send(b!, 2, 'fetching'); // b's replay guard now knows seq 2 for this device
      await send(a!, 5, 'committed'); // a stores the newer report
      expect(b!.store.getDevice(device)?.state.seq).toBe(5);
      await send(b!, 3, 'fetching'); // late: above what b saw, below what the database holds
      expect(a!.store.getDevice(device)).toMatchObject({ state: { seq: 5 }, phase: 'committed' });
      expect(b!.store.getDevice(device)).toMatchObject({ state: { seq: 5 }, phase: 'committed' });
    } finally {
      await dev.end();
    }
  });

  it('Replayed_event_across_hubs: a device event replayed to the second hub after the first stored it is stored once', async () => {
    const [a, b] = hubs;
    const device = 'dev-replay';
    const dev = await deviceVia(device, 'event');
    const event = (seq: number): DeviceEvent => ({ v: 1, deviceId: device, seq, at: Date.now(), kind: 'fetch-failed', code: 'AGENT_ERR_FETCH' });
    const send = (h: Hub, e: DeviceEvent) => dev.send(h, encode(e), e.seq);
    try {
      await send(b!, event(2)); // b's replay guard now knows seq 2 for this device
      const captured = event(4);
      await send(a!, captured); // a stores seq 4
      await send(b!, captured); // replayed to b: above what b saw, already in the database
      for (const h of [a!, b!]) expect(h.store.listEvents(device).map((e) => e.seq)).toEqual([4, 2]);
    } finally {
      await dev.end();
    }
  });

  it('a request forwarded to a hub that does not lead is refused, not forwarded again', async () => {
    const res = await call(followerOf()!, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: ['dev-2'], allowUnknown: true }, { [FORWARDED_HEADER]: '1' });
    expect(res.status).toBe(503);
    expect(res.body.error?.code).toBe('HUB_ERR_NO_LEADER');
  });

  it('a leader deposed by a higher epoch stops its duties at once, and its debug control write is refused with HUB_ERR_NOT_LEADER and leaves nothing', async () => {
    const leader = leaderOf()!;
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      // Another holder takes the lease (what a hub waking from a long pause finds): the leader's renewal fails.
      await c.query(`UPDATE hub_leader SET epoch = epoch + 1, holder = 'intruder', url = NULL, expires_at = clock_timestamp() + interval '2 seconds'`);
      // Whether or not it has noticed yet (it renews every renewMs), it may no longer issue a debug control counter:
      // the device would refuse the one the next leader issues under the same number.
      leader.store.recordState(stateReport('dev-dbg', { seq: 1 }), Date.now());
      await expect(leader.debug.turnOn('dev-dbg', 5, 10, 'operator:test')).rejects.toMatchObject({ code: 'HUB_ERR_NOT_LEADER' });
      const left = await c.query<{ n: string }>(`SELECT (SELECT COUNT(*) FROM debug_sessions WHERE device_id = 'dev-dbg') + (SELECT COUNT(*) FROM debug_audit WHERE device_id = 'dev-dbg') AS n`);
      expect(Number(left.rows[0]!.n)).toBe(0);
      await waitFor(() => leader.leadership.epoch === null, 'the leader to step down', 30_000);
      expect(engineTimer(leader)).toBeUndefined();
      expect((leader.assigner as unknown as { timer?: unknown }).timer).toBeUndefined();
      // Once that lease runs out one of the two hubs leads again, under a new epoch.
      const next = await waitFor(() => leaderOf(), 'a new leader', 30_000);
      expect(next.leadership.epoch).toBe(3);
      await waitFor(() => engineTimer(next) !== undefined, 'the new leader\'s rollout engine', 30_000);
    } finally {
      await c.end();
    }
  });

  it('a leader that stops cleanly hands over without waiting for its lease to run out, and the new one issues higher counters', async () => {
    const leader = leaderOf()!;
    const epoch = leader.leadership.epoch!;
    const standby = hubs.find((h) => h !== leader)!;
    await leader.close();
    hubs.splice(hubs.indexOf(leader), 1);
    await waitFor(() => standby.leadership.epoch !== null, 'the standby to lead', 30_000);
    expect(standby.leadership.epoch).toBe(epoch + 1);
    const dep = await call(standby, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: ['dev-1'], allowUnknown: true });
    expect(dep.status).toBe(200);
    expect(standby.store.getAssignment('dev-1')?.counter).toBe(2);
  });
});
