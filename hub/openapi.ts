/**
 * GET /openapi.json: an OpenAPI 3.1 document generated from the route schemas
 * fastify validates with (OpenAPI 3.1 uses JSON Schema 2020-12, which our
 * schemas are a subset of), so the document cannot drift from the API.
 */
import type { RouteOptions } from 'fastify';
import { errorBody } from './api-schemas.js';

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
      const op: Record<string, unknown> = { summary: schema.summary ?? '' };
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
    paths,
  };
}
