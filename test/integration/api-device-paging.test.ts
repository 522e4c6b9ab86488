/**
 * GET /v1/devices pages and filters in the database, at 100,000 devices in
 * the real hub's SQLite file (authentication on): keyset pages in id order,
 * filters by state, version, tag, ring, phase and part of the id, the total of
 * the matching devices, and GET /v1/fleet/summary counted the same way. The
 * expected answers are computed here from the rule that generated each row.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../hub/hub.js';
import { cleanupTempDirs, makeKeys } from '../helpers/env.js';
import { adminToken, api, makeBundle, startTestHub } from '../helpers/hub-harness.js';
import { readFileSync } from 'node:fs';

const N = 100_000;
const WINDOW = 180_000;
let hub: Hub;
let token: string;
let bundleId = '';
const now = Date.now();

interface Dev { id: string; version: string; tags: string[]; ring: string | null; phase: string; online: boolean }
const devs: Dev[] = [];

function gen(i: number): Dev {
  const id = `d-${String(i).padStart(6, '0')}`;
  return {
    id, version: i % 3 === 0 ? 'none' : `churn@${1 + (i % 2)}`,
    tags: i % 10 === 0 ? ['eu', 'cam'] : i % 10 === 1 ? ['eu'] : [],
    ring: i % 7 === 0 ? 'canary' : null, phase: i % 5 === 0 ? 'probation' : 'committed', online: i % 4 !== 0,
  };
}

beforeAll(async () => {
  const keys = makeKeys();
  hub = await startTestHub(keys, { insecureDemo: false, onlineWindowMs: WINDOW }, { now: () => now });
  token = adminToken(hub);
  const b = await makeBundle([keys.keys.release], { name: 'churn', version: 1 });
  bundleId = (await api<{ bundleId: string }>(hub, 'POST', '/v1/bundles', new Uint8Array(readFileSync(b.path)), token)).body.bundleId;
  const db = hub.store.db;
  const dev = db.prepare('INSERT INTO devices (id, state, first_seen, last_seen, active_bundle_id, phase, last_error_code) VALUES (?, ?, ?, ?, ?, ?, NULL)');
  const asg = db.prepare('INSERT INTO assignments (device_id, counter, bundle_id, envelope, rollout_id, ring, issued_at, expires_at) VALUES (?, 1, ?, ?, NULL, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < N; i++) {
      const d = gen(i);
      devs.push(d);
      const [name, version] = d.version.split('@');
      // One device in ten carries its single tag as a string: capabilities.tags may be either (hub/rollouts/rings.ts).
      const tags = i % 10 === 1 ? 'eu' : d.tags;
      const state = { v: 1, deviceId: d.id, seq: 1, at: now, agentVersion: '0.1.0', runtime: 'onnxruntime-node', active: d.version === 'none' ? null : { bundleId, name, version: Number(version) },
        previous: null, phase: d.phase, target: null, progress: null, lastError: null, counter: 0, capabilities: { tags } };
      dev.run(d.id, JSON.stringify(state), now - 1e6, d.online ? now - 1000 : now - WINDOW - 1000, d.version === 'none' ? null : bundleId, d.phase);
      if (d.ring) asg.run(d.id, bundleId, '{}', d.ring, now, now + 86_400_000);
    }
  })();
}, 120_000);

afterAll(async () => {
  await hub?.close();
  cleanupTempDirs();
});

type Page = { devices: { id: string; online: boolean; ring: string | null; tags: string[]; phase: string; active: { name: string; version: number } | null }[]; total: number; next: string | null };

async function page(query: string): Promise<Page> {
  const r = await api<Page>(hub, 'GET', `/v1/devices?${query}`, undefined, token);
  if (r.status !== 200) throw new Error(`${query}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Every page of a filter, following `next`. */
async function walk(filter: string, limit: number): Promise<{ ids: string[]; totals: number[]; pages: number }> {
  const ids: string[] = [];
  const totals: number[] = [];
  let after: string | null = null;
  let pages = 0;
  do {
    const p = await page(`${filter}&limit=${limit}${after ? `&after=${after}` : ''}`);
    expect(p.devices.length).toBeLessThanOrEqual(limit);
    ids.push(...p.devices.map((d) => d.id));
    totals.push(p.total);
    after = p.next;
    pages++;
  } while (after !== null);
  return { ids, totals, pages };
}

describe('device registry paging at 100,000 devices', () => {
  it('answers a page of 50 in id order with the total and the next cursor', async () => {
    const p = await page('limit=50');
    expect(p.total).toBe(N);
    expect(p.devices.map((d) => d.id)).toEqual(devs.slice(0, 50).map((d) => d.id));
    expect(p.next).toBe('d-000049');
    const p2 = await page(`limit=50&after=${p.next}`);
    expect(p2.devices[0].id).toBe('d-000050');
    const last = await page('limit=50&after=d-099979');
    expect(last.devices.map((d) => d.id)).toEqual(devs.slice(99_980).map((d) => d.id));
    expect(last.next).toBeNull();
  });

  it('filters in the database: each filter walked page by page gives exactly the matching devices', async () => {
    const cases: [string, (d: Dev) => boolean][] = [
      ['ring=canary&state=offline', (d) => d.ring === 'canary' && !d.online],
      ['tag=eu&version=churn%402', (d) => d.tags.includes('eu') && d.version === 'churn@2'],
      ['tag=cam&phase=probation', (d) => d.tags.includes('cam') && d.phase === 'probation'],
      ['version=none&ring=none&state=online&q=77', (d) => d.version === 'none' && d.ring === null && d.online && d.id.includes('77')],
    ];
    for (const [filter, match] of cases) {
      const want = devs.filter(match).map((d) => d.id);
      expect(want.length, filter).toBeGreaterThan(100);
      const got = await walk(filter, 1000);
      expect(got.ids, filter).toEqual(want);
      expect(new Set(got.totals), filter).toEqual(new Set([want.length]));
      expect(got.pages, filter).toBe(Math.max(1, Math.ceil(want.length / 1000)));
    }
    // What a page says about each device agrees with the filter it was asked for.
    const p = await page('tag=eu&ring=canary&limit=20');
    for (const d of p.devices) { expect(d.tags).toContain('eu'); expect(d.ring).toBe('canary'); }
  });

  it('refuses a page larger than 1000 with a coded error', async () => {
    const r = await api<{ error: { code: string; message: string } }>(hub, 'GET', '/v1/devices?limit=5000', undefined, token);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('HUB_ERR_BAD_REQUEST');
    expect(r.body.error.message).toContain('after=next');
  });

  it('answers any filter text with a page or a coded 400, never a 500 (Device_filter_input_never_500)', async () => {
    // PostgreSQL refuses a NUL byte in a text parameter (SQLite takes it): every text filter and the cursor.
    for (const key of ['q', 'tag', 'ring', 'phase', 'version', 'after']) {
      for (const value of ['%00', 'a%00b', '%F0%9F%98%80', '_', "'", 'x@1e999']) {
        const r = await api<{ error?: { code: string; message: string }; total?: number }>(hub, 'GET', `/v1/devices?${key}=${value}&limit=5`, undefined, token);
        expect([200, 400], `${key}=${value}`).toContain(r.status);
        if (r.status === 400) { expect(r.body.error?.code, `${key}=${value}`).toBe('HUB_ERR_BAD_REQUEST'); expect(r.body.error?.message).toContain(key); }
      }
    }
  });

  it('counts the fleet by version, ring, phase and online in GET /v1/fleet/summary', async () => {
    const r = await api<{ total: number; online: number; byVersion: Record<string, number>; byRing: Record<string, number>; byPhase: Record<string, number> }>(hub, 'GET', '/v1/fleet/summary', undefined, token);
    expect(r.status).toBe(200);
    const count = (f: (d: Dev) => string) => devs.reduce<Record<string, number>>((a, d) => { a[f(d)] = (a[f(d)] ?? 0) + 1; return a; }, {});
    expect(r.body).toEqual({ total: N, online: devs.filter((d) => d.online).length, byVersion: count((d) => d.version), byRing: count((d) => d.ring ?? 'none'), byPhase: count((d) => d.phase) });
  });
});
