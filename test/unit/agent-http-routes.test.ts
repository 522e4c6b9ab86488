/**
 * The local API's route table, walked route by route (the table is data that
 * code and tests both read): every route refuses a DNS-rebinding Host and a
 * cross-origin Origin, every route that runs the model (and /metrics)
 * refuses a request without the bearer token, and every route with a body refuses a
 * CORS-safelisted Content-Type — all before the service is called. The
 * service here is a recording stub (the seam): what is checked is that the
 * HTTP layer never reaches it.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpApi, type PredictService } from '../../agent/http-api.js';

const TOKEN = 'route-table-token-0123456789';
const calls: string[] = [];
const svc: PredictService = {
  predict: async () => { calls.push('predict'); return {}; },
  infer: async () => { calls.push('infer'); throw new Error('not reached'); },
  served: () => { calls.push('served'); return { name: 'm', version: 1, inputs: [], outputs: [] }; },
  status: () => { calls.push('status'); return {}; },
  statusPage: () => { calls.push('statusPage'); return '<p>'; },
  metrics: async () => { calls.push('metrics'); return ''; },
};
const api = new HttpApi(svc, { maxBodyBytes: 4096, apiToken: TOKEN, listenHost: '127.0.0.1' });
let port = 0;

beforeAll(async () => { port = (await api.listen('127.0.0.1', 0)).port; });
afterAll(async () => { await api.close(); });

function call(method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; code?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}), ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString();
        let code: string | undefined;
        try { const j = JSON.parse(text); code = typeof j.error === 'string' ? j.code : j.error?.code; } catch { /* empty body */ }
        resolve({ status: res.statusCode ?? 0, code });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Concrete paths for a pattern: without and with its optional part. */
const paths = (pattern: string) => [...new Set([pattern.replace(/\[[^\]]*\]/g, ''), pattern.replace(/[[\]]/g, '')])].map((p) => p.replace(/\{[a-z]+\}/g, 'm'));

describe('agent HTTP route table', () => {
  it('has the routes the README lists, and model-running routes and /metrics need the token', () => {
    expect(api.routes.map((r) => `${r.methods.join('|')} ${r.pattern}${r.token ? ' (token)' : ''}`)).toEqual([
      'POST /v1/predict (token)', 'GET|HEAD /v1/status', 'GET|HEAD /', 'GET|HEAD /metrics (token)',
      'GET|HEAD /v2/health/live', 'GET|HEAD /v2/health/ready', 'GET|HEAD /v2',
      'GET|HEAD /v2/models/{name}[/versions/{version}]', 'GET|HEAD /v2/models/{name}[/versions/{version}]/ready',
      'POST /v2/models/{name}[/versions/{version}]/infer (token)',
    ]);
  });

  for (const r of api.routes) {
    for (const path of paths(r.pattern)) {
      const method = r.methods[0];
      const body = r.body ? '{}' : undefined;
      const ok = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
      it(`${method} ${path}: refuses Host evil.example, a foreign Origin${r.token ? ', no token' : ''}${r.body ? ', text/plain' : ''} without calling the service`, async () => {
        calls.length = 0;
        expect(await call(method, path, { ...ok, host: 'evil.example' }, body)).toEqual({ status: 403, code: 'AGENT_ERR_HOST' });
        expect(await call(method, path, { ...ok, origin: 'https://evil.example' }, body)).toEqual({ status: 403, code: 'AGENT_ERR_ORIGIN' });
        if (r.token) {
          expect(await call(method, path, { 'content-type': 'application/json' }, body)).toEqual({ status: 401, code: 'AGENT_ERR_UNAUTHORIZED' });
          expect(await call(method, path, { ...ok, authorization: 'Bearer wrong-token-0123456789' }, body)).toEqual({ status: 401, code: 'AGENT_ERR_UNAUTHORIZED' });
        }
        if (r.body) {
          for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
            expect(await call(method, path, { ...ok, 'content-type': type }, body)).toEqual({ status: 415, code: 'AGENT_ERR_CONTENT_TYPE' });
          }
        }
        expect(calls).toEqual([]);
      });
    }
  }
});
