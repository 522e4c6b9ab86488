/**
 * Authorization is decided by the route fastify matched, not by the URL text.
 * The table is generated from the real hub's own route table: every route ×
 * every caller (none, auditor, operator, admin) × encoded variants of its
 * path (percent-encoded letters, double and trailing slashes, absolute form,
 * dot segments, mixed case, encoded slashes), sent raw so no client normalises
 * them. A caller below the route's access must never get past the guard.
 * A route registered without an access stops the API before it listens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../hub/api.js';
import type { Hub } from '../../hub/hub.js';
import { parseHubOptions } from '../../hub/options.js';
import { cleanupTempDirs, makeKeys } from '../helpers/env.js';
import { silentLogger } from '../helpers/hub-fixtures.js';
import { adminToken, api, startTestHub } from '../helpers/hub-harness.js';
import { rawRequest } from '../helpers/raw-http.js';

afterAll(cleanupTempDirs);

type Caller = 'none' | 'auditor' | 'operator' | 'admin';
const RANK: Record<string, number> = { none: 0, public: 0, auditor: 1, operator: 2, admin: 3 };

/** A concrete path for a route pattern: parameters get a value of the right shape. */
const concrete = (url: string) => url.replace(/:id/g, url.startsWith('/v1/tokens') ? 'tok-000000000000' : 'dev-1').replace(/:name/g, 'churn').replace(/:version/g, '1');

/** Spellings of `path` that a router may take for the same route, or for none. */
export function variants(path: string): string[] {
  const out = new Set<string>();
  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    if (/[A-Za-z]/.test(c)) {
      const hex = c.charCodeAt(0).toString(16);
      out.add(`${path.slice(0, i)}%${hex.toUpperCase()}${path.slice(i + 1)}`);
      out.add(`${path.slice(0, i)}%${hex}${path.slice(i + 1)}`);
      out.add(`${path.slice(0, i)}${c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()}${path.slice(i + 1)}`);
    }
    if (c === '/') {
      out.add(`${path.slice(0, i)}//${path.slice(i + 1)}`);
      if (i > 0) out.add(`${path.slice(0, i)}%2F${path.slice(i + 1)}`);
      if (i > 0) out.add(`${path.slice(0, i)}/./${path.slice(i + 1)}`);
      if (i > 0) out.add(`${path.slice(0, i)}/zz/../${path.slice(i + 1)}`);
    }
  }
  const enc = path.replace(/[a-z]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
  for (const p of [path, enc]) {
    out.add(`${p}/`);
    out.add(`${p}?x=1`);
    out.add(`http://x${p}`);
    out.add(`http://127.0.0.1${p}`);
    out.add(`https://x:1${p}`);
  }
  out.add(path.toUpperCase());
  out.add(enc);
  out.delete(path);
  return [...out];
}

describe('route roles from the route table', () => {
  let hub: Hub;
  const tokens: Record<Caller, string | undefined> = { none: undefined, auditor: undefined, operator: undefined, admin: undefined };
  beforeAll(async () => {
    hub = await startTestHub(makeKeys(), { insecureDemo: false });
    tokens.admin = adminToken(hub);
    for (const role of ['operator', 'auditor'] as const) {
      const r = await api<{ token: string }>(hub, 'POST', '/v1/tokens', { role, label: `${role} (route roles test)` });
      expect(r.status).toBe(201);
      tokens[role] = r.body.token;
    }
  }, 120_000);
  afterAll(async () => { await hub?.close(); });

  const send = (method: string, target: string, caller: Caller) =>
    rawRequest(hub.httpUrl, method, target, tokens[caller] ? { authorization: `Bearer ${tokens[caller]}` } : {}, method === 'GET' || method === 'HEAD' ? undefined : '{"role":"admin"}');

  it('every route declares an access, and the table covers the token and log routes', () => {
    const table = hub.routes();
    const key = (r: { method: string; url: string }) => `${r.method} ${r.url}`;
    const by = new Map(table.map((r) => [key(r), r.access]));
    expect(by.get('POST /v1/tokens')).toBe('admin');
    expect(by.get('GET /v1/tokens')).toBe('admin');
    expect(by.get('DELETE /v1/tokens/:id')).toBe('admin');
    expect(by.get('GET /v1/log/entries')).toBe('auditor');
    expect(by.get('GET /v1/log/installs')).toBe('auditor');
    expect(by.get('GET /v1/log/checkpoint')).toBe('public');
    expect(by.get('GET /v1/health')).toBe('public');
    for (const r of table) expect(['public', 'auditor', 'operator', 'admin'], key(r)).toContain(r.access);
  });

  it('Privilege_escalation_through_the_URL: no caller below a route\'s access gets past the guard, however the path is spelt', async () => {
    const table = hub.routes();
    const bypass: string[] = [];
    let sent = 0;
    for (const r of table) {
      const path = concrete(r.url);
      for (const caller of ['none', 'auditor', 'operator'] as const) {
        if (RANK[caller] >= RANK[r.access]) continue;
        for (const target of [path, ...variants(path)]) {
          const a = await send(r.method, target, caller);
          sent++;
          // 401/403 from the guard, 404 for a spelling that matches no route (after a valid token), 400
          // only from the HTTP parser (no fleetcast code: the request never reached a route).
          const ok = caller === 'none'
            ? a.status === 401 || (a.status === 400 && !a.body.includes('HUB_ERR_'))
            : a.status === 403 || a.status === 404 || (a.status === 400 && !a.body.includes('HUB_ERR_'));
          if (!ok) bypass.push(`${caller} ${r.method} ${target} → ${a.status} ${a.body.slice(0, 120)}`);
          if (target === path && a.status !== (caller === 'none' ? 401 : 403)) bypass.push(`${caller} ${r.method} ${path} (as registered) → ${a.status}`);
        }
      }
    }
    expect(sent).toBeGreaterThan(1000);
    expect(bypass).toEqual([]);
    // Nothing was created or revoked by a caller below admin.
    const list = await api<{ tokens: { createdBy: string; revoked: boolean }[] }>(hub, 'GET', '/v1/tokens');
    expect(list.body.tokens.filter((t) => !t.createdBy.startsWith('admin:') && t.createdBy !== 'bootstrap')).toEqual([]);
    expect(list.body.tokens.filter((t) => t.revoked)).toEqual([]);
  }, 600_000);

  it('a caller at or above a route\'s access gets past the guard (the table is not vacuous)', async () => {
    for (const r of hub.routes()) {
      for (const caller of ['none', 'auditor', 'operator', 'admin'] as const) {
        if (RANK[caller] < RANK[r.access] || (caller === 'none' && r.access !== 'public')) continue;
        const a = await send(r.method, concrete(r.url), caller);
        expect([401, 403], `${caller} ${r.method} ${r.url} → ${a.status} ${a.body.slice(0, 120)}`).not.toContain(a.status);
      }
    }
  }, 300_000);

  it('a path that matches no route needs a valid token before it is told so', async () => {
    expect((await send('GET', '/v1/nothing-here', 'none')).status).toBe(401);
    const a = await send('GET', '/v1/nothing-here', 'auditor');
    expect(a.status).toBe(404);
    expect(a.body).toContain('HUB_ERR_NO_ROUTE');
  });
});

describe('a route without a declared access', () => {
  it('stops the API at start-up with HUB_ERR_ROUTE_ACCESS', async () => {
    const options = parseHubOptions({ dataDir: '/nonexistent', keysDir: '/nonexistent' });
    // The API is built with seams it does not call before a request: only route registration is under test.
    const app = buildApi({ options, logger: silentLogger(), now: Date.now, health: () => { throw new Error('unused'); } } as unknown as Parameters<typeof buildApi>[0]);
    expect(() => app.get('/v1/forgot-its-access', async () => ({ leaked: true }))).toThrow(expect.objectContaining({ code: 'HUB_ERR_ROUTE_ACCESS' }));
    expect(() => app.get('/v1/misspelt-access', { config: { acess: 'public' } }, async () => ({ leaked: true }))).toThrow(expect.objectContaining({ code: 'HUB_ERR_ROUTE_ACCESS' }));
    await app.close().catch(() => undefined);
  });
});
