/**
 * Two real hubs in one cluster (hub/cluster/): one PostgreSQL holds the leader lease, one mosquitto carries
 * the fleet. Exactly one hub runs the leader-only work; a follower forwards single-writer API calls
 * (publish, deploy, rollouts, debug) to the leader's advertised URL and relays its answer; a hub deposed by
 * a higher epoch stops its leader duties at once; when the leader stops, the other takes over and catches up.
 *
 * Each hub still keeps its own SQLite store here (the PostgreSQL store is built on the `pg` branch); so that
 * the follower can authenticate the caller, the test copies the leader's admin token row into it, as a
 * shared store would hold it.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../hub/hub.js';
import { FORWARDED_HEADER } from '../../hub/cluster/forward.js';
import { cleanupTempDirs, makeKeys, waitFor } from '../helpers/env.js';
import { adminToken, api, makeBundle, startTestHub } from '../helpers/hub-harness.js';
import { hasMosquitto, startMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';
import { hasPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';

afterAll(cleanupTempDirs);

const CLUSTER = { leaseMs: 3_000, renewMs: 500 } as const;

describe.skipIf(!hasPostgres || !hasMosquitto)('two hubs, one leader (PostgreSQL lease, mosquitto)', () => {
  const keys = makeKeys();
  let server: TestPostgres;
  let broker: Mosquitto;
  let url: string;
  const hubs: Hub[] = [];
  beforeAll(async () => {
    server = await startPostgres();
    broker = await startMosquitto();
    url = server.url;
    for (const name of ['hub-a', 'hub-b']) {
      hubs.push(await startTestHub(keys, { insecureDemo: false, brokerUrl: broker.url, mqttClientId: name, cluster: { url, ...CLUSTER } }));
    }
  });
  afterAll(async () => {
    for (const h of hubs) await h.close().catch(() => {});
    await broker?.stop();
    await server?.close();
  });

  const leaderOf = () => hubs.find((h) => h.leadership.epoch !== null);
  const followerOf = () => hubs.find((h) => h.leadership.epoch === null);

  it('exactly one hub leads and only it ran the leader duties (the log catch-up, the rollout engine)', async () => {
    const leader = await waitFor(() => leaderOf(), 'a leader', 30_000);
    expect(hubs.filter((h) => h.leadership.epoch !== null)).toHaveLength(1);
    expect(leader.leadership.epoch).toBe(1);
    const follower = followerOf()!;
    // The leader logged the root chain when elected; the follower appended nothing.
    expect(leader.translog.log.latest()?.size).toBeGreaterThan(0);
    expect(follower.translog.log.latest()).toBeUndefined();
    expect((leader.rollouts.engine as unknown as { timer?: unknown }).timer).toBeDefined();
    expect((follower.rollouts.engine as unknown as { timer?: unknown }).timer).toBeUndefined();
  });

  it('a follower forwards a publish and a deploy to the leader and relays its answers', async () => {
    const leader = leaderOf()!;
    const follower = followerOf()!;
    const token = adminToken(leader);
    const row = leader.store.sqlite.prepare('SELECT * FROM api_tokens').get() as Record<string, unknown>;
    follower.store.sqlite.prepare('INSERT INTO api_tokens (id, hash, role, label, created_at, created_by, revoked, expires_at) VALUES (@id, @hash, @role, @label, @created_at, @created_by, @revoked, @expires_at)').run(row);

    const b = await makeBundle([keys.keys.release], { chunkSize: 16_384 });
    const pub = await api<{ bundleId: string }>(follower, 'POST', '/v1/bundles', readFileSync(b.path), token);
    expect(pub.status).toBe(201);
    expect(pub.body.bundleId).toBe(b.bundleId);
    const dep = await api<{ assigned: unknown[] }>(follower, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: ['dev-1'], allowUnknown: true }, token);
    expect(dep.status).toBe(200);
    // Written by the leader, not by the follower that took the call.
    expect(leader.store.getBundle(b.bundleId)).toBeDefined();
    expect(leader.store.getAssignment('dev-1')?.counter).toBe(1);
    expect(follower.store.getBundle(b.bundleId)).toBeUndefined();
    expect(follower.store.getAssignment('dev-1')).toBeUndefined();
    // The follower still authenticates first: no token, no forwarding.
    expect((await api(follower, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: ['dev-1'] }, null)).status).toBe(401);
    // Reads are answered by the hub asked.
    expect((await api(follower, 'GET', '/v1/bundles', undefined, token)).status).toBe(200);
  });

  it('a request forwarded to a hub that does not lead is refused, not forwarded again', async () => {
    const follower = followerOf()!;
    const res = await fetch(`${follower.httpUrl}/v1/deployments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken(leaderOf()!)}`, 'content-type': 'application/json', [FORWARDED_HEADER]: '1' },
      body: JSON.stringify({ name: 'churn', version: 1, devices: ['dev-2'], allowUnknown: true }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('HUB_ERR_NO_LEADER');
  });

  it('a leader deposed by a higher epoch stops its duties at once; when it stops, the other hub takes over', async () => {
    const leader = leaderOf()!;
    const follower = followerOf()!;
    // Another holder takes the lease (as a hub that woke up from a pause would see it): the leader's renewal fails.
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(`UPDATE hub_leader SET epoch = epoch + 1, holder = 'intruder', url = NULL, expires_at = clock_timestamp() + interval '2 seconds'`);
      await waitFor(() => leader.leadership.epoch === null, 'the leader to step down', 30_000);
      expect((leader.rollouts.engine as unknown as { timer?: unknown }).timer).toBeUndefined();
      expect((leader.assigner as unknown as { timer?: unknown }).timer).toBeUndefined();
      // Once that lease runs out one of the two hubs leads again, under a new epoch.
      const next = await waitFor(() => leaderOf(), 'a new leader', 30_000);
      expect(next.leadership.epoch).toBe(3);
      const current = next;
      const other = hubs.find((h) => h !== current)!;
      await other.close();
      hubs.splice(hubs.indexOf(other), 1);
      expect(current.leadership.epoch).toBe(3);
      if (current === follower) expect(follower.translog.log.latest()?.size).toBeGreaterThan(0);
      // A clean stop released the lease (not the leader here, or it was): the survivor leads.
      await waitFor(() => current.leadership.epoch !== null, 'the survivor to lead', 30_000);
    } finally {
      await c.end();
    }
  });

  it('a leader that stops cleanly hands over without waiting for its lease to run out', async () => {
    // One hub left (the previous test closed the other); start a second one, then stop the leader.
    hubs.push(await startTestHub(keys, { insecureDemo: false, brokerUrl: broker.url, mqttClientId: 'hub-c', cluster: { url, ...CLUSTER } }));
    const leader = leaderOf()!;
    const epoch = leader.leadership.epoch!;
    const standby = hubs.find((h) => h !== leader)!;
    expect(standby.leadership.epoch).toBeNull();
    await leader.close();
    hubs.splice(hubs.indexOf(leader), 1);
    await waitFor(() => standby.leadership.epoch !== null, 'the standby to lead', 30_000);
    expect(standby.leadership.epoch).toBe(epoch + 1);
    expect(standby.translog.log.latest()?.size).toBeGreaterThan(0);
  });
});
