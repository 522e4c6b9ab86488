/**
 * The OpenAPI document a client generator reads: a bearer security scheme,
 * `security: []` exactly on the public routes, a unique operation id and a tag
 * on every operation. Checked against the real hub's route table (auth on), so
 * a route added later without these fails here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../hub/hub.js';
import { cleanupTempDirs, makeKeys } from '../helpers/env.js';
import { api, startTestHub } from '../helpers/hub-harness.js';

afterAll(cleanupTempDirs);

interface Op { operationId?: string; tags?: string[]; security?: unknown[]; description?: string }
interface Doc { security?: unknown; components?: { securitySchemes?: Record<string, unknown> }; tags?: { name: string }[]; paths: Record<string, Record<string, Op>> }

describe('GET /openapi.json', () => {
  let hub: Hub;
  beforeAll(async () => { hub = await startTestHub(makeKeys(), { insecureDemo: false }); }, 120_000);
  afterAll(async () => { await hub?.close(); });

  it('OpenAPI_declares_bearer_security_operation_ids_and_tags: every route of the hub has an operation id, a tag and its security', async () => {
    const r = await api<Doc>(hub, 'GET', '/openapi.json', undefined, null);
    expect(r.status).toBe(200);
    const doc = r.body;
    expect(doc.components?.securitySchemes?.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearer: [] }]);
    const ids = new Set<string>();
    let checked = 0;
    for (const route of hub.routes()) {
      if (route.url === '/openapi.json' || route.method === 'HEAD') continue;
      const op = doc.paths[route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')]?.[route.method.toLowerCase()];
      expect(op, `${route.method} ${route.url}`).toBeDefined();
      expect(op.operationId, `${route.method} ${route.url}`).toMatch(/^[a-z]+[A-Za-z0-9]+$/);
      expect(ids.has(op.operationId!), `duplicate ${op.operationId}`).toBe(false);
      ids.add(op.operationId!);
      expect(op.tags?.length, `${route.method} ${route.url}`).toBe(1);
      expect(doc.tags?.map((t) => t.name)).toContain(op.tags![0]);
      if (route.access === 'public') expect(op.security).toEqual([]);
      else {
        expect(op.security).toBeUndefined();
        expect(op.description).toContain(`role ${route.access}`);
      }
      checked++;
    }
    expect(checked).toBeGreaterThan(20);
    expect(doc.paths['/v1/devices/{id}'].get).toMatchObject({ operationId: 'getV1DevicesById', tags: ['devices'] });
    expect(doc.paths['/v1/health'].get.security).toEqual([]);
  });
});
