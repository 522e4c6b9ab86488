/**
 * Issue #3, "Operator API and auth" and bad operator input: each role does
 * exactly what it should, bad or missing tokens get 401/403 with a code and
 * nothing else; tokens are stored hashed; the bootstrap token file is 0600;
 * bad rollout input is a coded error and changes nothing.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs } from '../helpers/env.js';
import { api } from '../helpers/hub-harness.js';
import { rolloutWorld, type RolloutWorld } from '../helpers/rollout-fixture.js';

afterAll(cleanupTempDirs);

describe('tokens, roles and refusals', () => {
  let w: RolloutWorld;
  beforeAll(async () => { w = await rolloutWorld({ agents: 3 }); }, 150_000);
  afterAll(async () => { await w?.stop(); });

  it('gives each role exactly its rights', async () => {
    expect(statSync(join(w.hub.options.dataDir, 'admin.token')).mode & 0o777).toBe(0o600);
    const mk = async (role: string) => {
      const r = await api<{ token: string; id: string; role: string }>(w.hub, 'POST', '/v1/tokens', { role, label: `${role} test` });
      expect(r.status).toBe(201);
      return r.body.token;
    };
    const operator = await mk('operator');
    const auditor = await mk('auditor');
    // Stored hashed: the token text is nowhere in the database.
    const rows = w.hub.store.db.prepare('SELECT * FROM api_tokens').all() as Record<string, unknown>[];
    expect(JSON.stringify(rows.map((r) => ({ ...r, hash: Buffer.from(r.hash as Buffer).toString('hex') })))).not.toContain(operator);

    await w.publish(2);
    // auditor: reads only.
    expect((await api(w.hub, 'GET', '/v1/devices', undefined, auditor)).status).toBe(200);
    expect((await api(w.hub, 'GET', '/v1/rollouts', undefined, auditor)).status).toBe(200);
    const denied = await api<{ error: { code: string } }>(w.hub, 'POST', '/v1/rollouts', { name: 'churn', version: 2 }, auditor);
    expect(denied).toMatchObject({ status: 403, body: { error: { code: 'HUB_ERR_FORBIDDEN' } } });
    expect((await api(w.hub, 'POST', '/v1/deployments', { name: 'churn', version: 2, all: true }, auditor)).status).toBe(403);
    expect((await api(w.hub, 'GET', '/v1/tokens', undefined, auditor)).status).toBe(403);
    // operator: rollouts, not tokens.
    const started = await api<{ id: string }>(w.hub, 'POST', '/v1/rollouts', { name: 'churn', version: 2, reason: 'by operator' }, operator);
    expect(started.status).toBe(201);
    expect((await api(w.hub, 'POST', `/v1/rollouts/${started.body.id}/pause`, {}, operator)).status).toBe(200);
    expect((await api(w.hub, 'POST', '/v1/tokens', { role: 'admin' }, operator)).status).toBe(403);
    const hist = await api<{ decisions: { actor: string }[] }>(w.hub, 'GET', `/v1/rollouts/${started.body.id}/history`, undefined, auditor);
    expect(hist.body.decisions.every((d) => d.actor.startsWith('operator:tok-'))).toBe(true);
    // admin: tokens (list shows ids and roles, never tokens) and revocation.
    const list = await api<{ tokens: { id: string; role: string }[] }>(w.hub, 'GET', '/v1/tokens');
    expect(list.body.tokens.map((t) => t.role).sort()).toEqual(['admin', 'auditor', 'operator']);
    expect(JSON.stringify(list.body)).not.toContain(auditor);
    const audId = list.body.tokens.find((t) => t.role === 'auditor')!.id;
    expect((await api(w.hub, 'DELETE', `/v1/tokens/${audId}`)).status).toBe(200);
    expect((await api(w.hub, 'GET', '/v1/devices', undefined, auditor)).status).toBe(401);
    await api(w.hub, 'POST', `/v1/rollouts/${started.body.id}/abort`, {});
  });

  it('refuses missing and wrong tokens with 401 and a code, and says nothing else', async () => {
    for (const [token, path] of [[null, '/v1/devices'], ['fct_wrong', '/v1/devices'], [null, '/v1/rollouts'], ['x'.repeat(600), '/v1/bundles'], [null, '/v1/nope']] as const) {
      const r = await api<{ error: { code: string; message: string }; devices?: unknown }>(w.hub, 'GET', path, undefined, token);
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('HUB_ERR_UNAUTHENTICATED');
      expect(Object.keys(r.body)).toEqual(['error']);
    }
    const raw = await fetch(`${w.hub.httpUrl}/v1/devices`, { headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } });
    expect(raw.status).toBe(401);
    // Health and the OpenAPI document stay open.
    expect((await api(w.hub, 'GET', '/v1/health', undefined, null)).status).toBe(200);
    expect((await api(w.hub, 'GET', '/openapi.json', undefined, null)).status).toBe(200);
  });

  it('answers bad rollout input with a coded error and changes nothing', async () => {
    const count = () => w.hub.rollouts.store.list().length;
    const before = count();
    const cases: [Record<string, unknown>, number, string][] = [
      [{ name: 'nope', version: 9 }, 404, 'HUB_ERR_UNKNOWN_BUNDLE'],
      [{ name: 'churn', version: 2, spec: { rings: [{ name: 'a', percent: 150 }] } }, 400, 'HUB_ERR_ROLLOUT_SPEC'],
      [{ name: 'churn', version: 2, spec: { rings: [{ name: 'a', percent: 50 }, { name: 'b', percent: 20 }] } }, 400, 'HUB_ERR_ROLLOUT_SPEC'],
      [{ name: 'churn', version: 2, spec: { rings: [{ name: 'a' }] } }, 400, 'HUB_ERR_ROLLOUT_SPEC'],
      [{ name: 'churn', version: 2, spec: { rings: 'canary' } }, 400, 'HUB_ERR_ROLLOUT_SPEC'],
      [{ name: 'churn', version: 2, spec: { gates: { soak: 'forever' } } }, 400, 'HUB_ERR_ROLLOUT_SPEC'],
      [{ name: 'churn', version: 2, spec: { colour: 'blue' } }, 400, 'HUB_ERR_ROLLOUT_SPEC'],
      [{ name: 'churn', version: 2, window: 'every tuesday' }, 400, 'HUB_ERR_ROLLOUT_SPEC'],
      [{ name: 'churn', version: 2, window: '61 * * * *' }, 400, 'HUB_ERR_ROLLOUT_SPEC'],
      [{ name: 'churn', version: 2, rate: 'fast' }, 400, 'HUB_ERR_ROLLOUT_SPEC'],
      [{ name: 'churn', version: 2, colour: 'blue' }, 400, 'HUB_ERR_BAD_REQUEST'],
    ];
    for (const [body, code, err] of cases) {
      const r = await api<{ error: { code: string; message: string } }>(w.hub, 'POST', '/v1/rollouts', body);
      expect({ body, status: r.status, code: r.body.error?.code }).toEqual({ body, status: code, code: err });
      expect(r.body.error.message.length).toBeGreaterThan(20);
    }
    expect(count()).toBe(before);
    expect((await api<{ error: { code: string } }>(w.hub, 'POST', '/v1/rollouts/ro-000000000000/pause', {})).body.error.code).toBe('HUB_ERR_UNKNOWN_ROLLOUT');
  });
});
