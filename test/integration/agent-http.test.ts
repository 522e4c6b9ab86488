/**
 * The predict API over real HTTP: every kind of bad input gets its 4xx code
 * and details, and a long run of malformed requests (oversized, invalid JSON,
 * deeply nested, …) leaves the agent serving valid requests.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { fixture, http, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { makeBundle, resign } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs } from '../helpers/env.js';

let fx: Fixture;
let agent: Agent;
let port: number;
const MAX_BODY = 64 * 1024;

beforeAll(async () => {
  fx = await fixture();
  const plain = await makeBundle(fx.keys, { version: 1, mlp: { seed: 51 } });
  // The release team's limits: features in [-100, 100], categories 0..9.
  const b = fx.hub.add(resign(plain, [fx.keys.keys.release], (m) => {
    const x = m.inputs.find((i) => i.name === 'x')!;
    x.min = -100; x.max = 100;
    const c = m.inputs.find((i) => i.name === 'category')!;
    c.min = 0; c.max = 9;
  }));
  agent = fx.newAgent('dev-http', { listen: '127.0.0.1:0', maxBodyBytes: MAX_BODY, maxBatch: 16 });
  await agent.start();
  port = agent.address!.port;
  await fx.hub.assign('dev-http', b, 1);
  await waitInstalled(agent, b.bundleId);
});
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

const good = () => ({ x: [[1, 2, 3, 4], [0, 0, 0, 0]], category: [[1], [2]] });
const post = (body: unknown) => http(port, 'POST', '/v1/predict', typeof body === 'string' ? body : JSON.stringify(body));

async function expectError(status: number, code: string, body: unknown, details?: Record<string, unknown>) {
  const r = await post(body);
  expect(r.status, JSON.stringify(r.json)).toBe(status);
  expect(r.json.error.code).toBe(code);
  expect(r.json.error.message.length).toBeGreaterThan(20);
  if (details) expect(r.json.error.details).toMatchObject(details);
}

/** Deeply nested arrays as JSON text, built without recursion. */
const nested = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;

describe('predict API input errors over HTTP', () => {
  it('answers a valid request', async () => {
    const r = await post({ inputs: good() });
    expect(r.status).toBe(200);
    expect(r.json.outputs.y.dims).toEqual([2, 2]);
  });

  it('each bad input kind gets its own 4xx code with {input, index}', async () => {
    await expectError(400, 'AGENT_ERR_UNKNOWN_INPUT', { inputs: { ...good(), extra: [[1]] } }, { input: 'extra' });
    await expectError(400, 'AGENT_ERR_MISSING_INPUT', { inputs: { x: good().x } }, { input: 'category' });
    await expectError(400, 'AGENT_ERR_INPUT_SHAPE', { inputs: { ...good(), x: [[1, 2, 3, 4], [1, 2]] } }, { input: 'x', index: [1] });
    await expectError(400, 'AGENT_ERR_INPUT_SHAPE', { inputs: { ...good(), x: [[1, 2, 3]], category: [[1]] } }, { input: 'x' });
    await expectError(400, 'AGENT_ERR_INPUT_SHAPE', { inputs: { ...good(), category: [[1]] } }, { input: 'category' });
    await expectError(400, 'AGENT_ERR_INPUT_TYPE', { inputs: { ...good(), x: [[1, 2, 'three', 4], [0, 0, 0, 0]] } }, { input: 'x', index: [0, 2] });
    await expectError(400, 'AGENT_ERR_INPUT_TYPE', { inputs: { ...good(), category: [[1.5], [2]] } }, { input: 'category', index: [0, 0] });
    await expectError(400, 'AGENT_ERR_INPUT_NAN', { inputs: { ...good(), x: [[1, 2, 3, 4], [0, 'NaN', 0, 0]] } }, { input: 'x', index: [1, 1] });
    await expectError(400, 'AGENT_ERR_INPUT_NAN', '{"inputs":{"x":[[1,2,3,4],[0,0,1e999,0]],"category":[[1],[2]]}}', { input: 'x', index: [1, 2] });
    await expectError(400, 'AGENT_ERR_INPUT_NAN', { inputs: { ...good(), x: [[1, 2, 3, null], [0, 0, 0, 0]] } }, { input: 'x', index: [0, 3] });
    await expectError(400, 'AGENT_ERR_INPUT_RANGE', { inputs: { ...good(), x: [[1, 2, 3, 4], [0, 0, 101, 0]] } }, { input: 'x', index: [1, 2] });
    await expectError(400, 'AGENT_ERR_INPUT_RANGE', { inputs: { ...good(), category: [[1], [10]] } }, { input: 'category', index: [1, 0] });
    await expectError(400, 'AGENT_ERR_BATCH_TOO_LARGE', { inputs: { x: Array.from({ length: 17 }, () => [1, 1, 1, 1]), category: Array.from({ length: 17 }, () => [1]) } });
    await expectError(400, 'AGENT_ERR_BAD_JSON', '{"inputs": {"x": [[1,2,3,4]]');
    await expectError(400, 'AGENT_ERR_BAD_JSON', '');
    await expectError(400, 'AGENT_ERR_BAD_REQUEST', [1, 2, 3]);
    await expectError(400, 'AGENT_ERR_BAD_REQUEST', { inputs: good(), extra: 1 });
    await expectError(400, 'AGENT_ERR_BAD_REQUEST', { inputs: [[1, 2]] });
    await expectError(400, 'AGENT_ERR_INPUT_SHAPE', `{"inputs":{"x":${nested(30_000)},"category":[[1]]}}`, { input: 'x' });
  });

  it('refuses oversized bodies with 413, declared or streamed, and keeps serving', async () => {
    const big = JSON.stringify({ inputs: { x: Array.from({ length: 20_000 }, () => [1, 2, 3, 4]), category: [[1]] } });
    expect(big.length).toBeGreaterThan(MAX_BODY);
    const declared = await post(big);
    expect(declared.status).toBe(413);
    expect(declared.json.error.code).toBe('AGENT_ERR_BODY_TOO_LARGE');
    const streamed = await http(port, 'POST', '/v1/predict', big, {}, { chunked: true });
    expect(streamed.status).toBe(413);
    expect(streamed.json.error.code).toBe('AGENT_ERR_BODY_TOO_LARGE');
    expect((await post({ inputs: good() })).status).toBe(200);
  });

  it('answers unknown paths with 404 and wrong methods with 405 + Allow', async () => {
    const nf = await http(port, 'GET', '/v3/nothing');
    expect([nf.status, nf.json.error.code]).toEqual([404, 'AGENT_ERR_NOT_FOUND']);
    const m1 = await http(port, 'GET', '/v1/predict');
    expect([m1.status, m1.json.error.code, m1.headers.allow]).toEqual([405, 'AGENT_ERR_METHOD', 'POST']);
    const m2 = await http(port, 'DELETE', '/v1/status');
    expect([m2.status, m2.headers.allow]).toEqual([405, 'GET, HEAD']);
    const st = await http(port, 'GET', '/v1/status?verbose=1');
    expect(st.status).toBe(200);
    expect(st.json.deviceId).toBe('dev-http');
  });

  it('survives 1,000 malformed requests in a row and then serves a valid one', async () => {
    const oversized = 'x'.repeat(MAX_BODY + 1);
    const kinds: (() => Promise<{ status: number }>)[] = [
      () => post('{"inputs":'),
      () => post('\u0000\u0001binary'),
      () => post(`{"inputs":{"x":${nested(20_000)},"category":[[1]]}}`),
      () => post(`{"inputs":${nested(30_000)}}`),
      () => post(oversized),
      () => http(port, 'POST', '/v1/predict', oversized, {}, { chunked: true }),
      () => post({ inputs: { x: [[1, 2, 3, 4]], category: [['a']] } }),
      () => post({ inputs: { x: [[1, 2, 3, 4]], category: [[1]], bogus: [] } }),
      () => post({ inputs: { x: [['NaN', 2, 3, 4]], category: [[1]] } }),
      () => post({ inputs: { x: [[1, 2, 3, 4]] } }),
      () => post({ inputs: { x: [[1e6, 2, 3, 4]], category: [[1]] } }),
      () => post({ inputs: null }),
      () => post('null'),
      () => post('"just a string"'),
      () => post({ inputs: { x: { '0': [1, 2, 3, 4] }, category: [[1]] } }),
      () => post(JSON.stringify({ inputs: { x: [[1, 2, 3, 4]], category: [[1]] } }).replace('"x"', '"__proto__"')),
      () => http(port, 'PUT', '/v1/predict', '{}'),
      () => http(port, 'GET', '/../../etc/passwd'),
    ];
    const statuses = new Map<number, number>();
    for (let i = 0; i < 1000; i++) {
      const r = await kinds[i % kinds.length]();
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    }
    expect([...statuses.keys()].sort()).toEqual([400, 404, 405, 413]);
    const ok = await post({ inputs: good() });
    expect(ok.status).toBe(200);
    expect(ok.json.outputs.y.data).toHaveLength(4);
  });

  it('a client that sends half a body and vanishes does not hurt the agent', async () => {
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/predict', headers: { 'content-length': 1000 } });
      req.on('error', () => resolve());
      req.write('{"inputs": {"x": [[1, 2');
      setImmediate(() => { req.destroy(); resolve(); });
    });
    expect((await post({ inputs: good() })).status).toBe(200);
  });
});
