/**
 * GET /openapi.json: an OpenAPI 3.1 document generated from the route schemas
 * fastify validates with (OpenAPI 3.1 uses JSON Schema 2020-12, which our
 * schemas are a subset of), so the document cannot drift from the API.
 */
import type { RouteOptions } from 'fastify';
import { errorBody } from './api-schemas.js';
import { accessOf } from './auth/guard.js';

/**
 * A stable, unique operation id from method and path, so generated clients get
 * names like `getV1DevicesById` that do not change when a summary is reworded.
 */
export function operationIdOf(method: string, url: string): string {
  const words = url.split('/').filter(Boolean).flatMap((seg) => (seg.startsWith(':') ? ['by', seg.slice(1)] : seg.split(/[^A-Za-z0-9]+/)));
  return method.toLowerCase() + words.filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join('');
}

/** The tag groups operations the way the CLI does: by the first path segment after the version (`/v1/rollouts/…` → rollouts). */
export function tagOf(url: string): string {
  const segs = url.split('/').filter(Boolean);
  return (segs[0] === 'v1' ? segs[1] : segs[0])?.replace(/^:.*/, '') || 'meta';
}

interface RouteSchema {
  summary?: string;
  hide?: boolean;
  consumes?: string[];
  body?: Record<string, unknown>;
  params?: { properties?: Record<string, Record<string, unknown>> };
  response?: Record<string, Record<string, unknown>>;
}

export function buildOpenApi(routes: readonly RouteOptions[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const schema = (r.schema ?? {}) as RouteSchema;
    if (schema.hide || r.method === 'HEAD') continue;
    const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    for (const m of methods) {
      const access = accessOf(r.config);
      const op: Record<string, unknown> = {
        operationId: operationIdOf(String(m), r.url),
        tags: [tagOf(r.url)],
        summary: schema.summary ?? '',
        // Public routes need no token (an empty requirement list overrides the document's default);
        // the others need a bearer token of at least the role named, which OpenAPI cannot express, so it is in the description.
        ...(access === 'public' ? { security: [] } : { description: `Needs a bearer token of role ${access ?? 'admin'} or higher.` }),
      };
      if (schema.params?.properties) {
        op.parameters = Object.entries(schema.params.properties).map(([name, s]) => ({ name, in: 'path', required: true, schema: s }));
      }
      if (schema.body) op.requestBody = { required: true, content: { 'application/json': { schema: schema.body } } };
      else if (schema.consumes) op.requestBody = { required: true, content: Object.fromEntries(schema.consumes.map((c) => [c, { schema: { type: 'string', format: 'binary' } }])) };
      const responses: Record<string, unknown> = {};
      for (const [status, s] of Object.entries(schema.response ?? {})) {
        responses[status.toUpperCase()] = { description: status.startsWith('2') ? 'OK' : 'A coded error', content: { 'application/json': { schema: s } } };
      }
      if (!responses['4XX']) responses['4XX'] = { description: 'A coded error', content: { 'application/json': { schema: errorBody.json } } };
      op.responses = responses;
      (paths[path] ??= {})[m.toLowerCase()] = op;
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'fleetcast hub', version: '1', description: 'Publish signed model bundles, deploy them to devices, and watch the fleet. Error codes: docs/errors.md.' },
    // Every operation needs `Authorization: Bearer <token>` unless it says `security: []` (docs/rollouts.md: API tokens).
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API token from `fleetcast token create` (the first admin token: <hub data>/admin.token).' } } },
    security: [{ bearer: [] }],
    tags: [...new Set(Object.values(paths).flatMap((ops) => Object.values(ops).flatMap((o) => (o as { tags: string[] }).tags)))].sort().map((name) => ({ name })),
    paths,
  };
}
