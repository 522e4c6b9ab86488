/**
 * The Open Inference Protocol (KServe v2 / Triton HTTP) on a real agent with a
 * real installed bundle (a model taking float32, int64, string and bool
 * inputs). Requests are written by hand from the specification
 * (KServe required_api.md; Triton protocol/extension_binary_data.md): JSON
 * bodies as text, binary bodies as a JSON header followed by little-endian
 * bytes written with Buffer.write*LE, so the test does not share the agent's
 * encoder. Answers are checked against `/v1/predict` on the same inputs.
 */
import { request } from 'node:http';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { TELEMETRY_DEFAULTS } from '../../agent/telemetry/collector.js';
import { buildMixedIo } from '../../bundle-build/onnx-build-io.js';
import { decodeTelemetry } from '../../protocol/messages.js';
import type { TelemetryReport } from '../../protocol/telemetry.js';
import { topics } from '../../protocol/topics.js';
import { fixture, http, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { makeBundle, resign } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, waitFor } from '../helpers/env.js';

let fx: Fixture;
let agent: Agent;
let port: number;
const MAX_BODY = 8 * 1024;

beforeAll(async () => {
  fx = await fixture();
  const plain = await makeBundle(fx.keys, { name: 'mixed', version: 3, model: buildMixedIo(7) });
  const b = fx.hub.add(resign(plain, [fx.keys.keys.release], (m) => {
    const x = m.inputs.find((i) => i.name === 'x')!;
    x.min = -100; x.max = 100;
  }));
  agent = fx.newAgent('dev-v2', { listen: '127.0.0.1:0', maxBodyBytes: MAX_BODY, maxBatch: 8 });
  await agent.start();
  port = agent.address!.port;
  await fx.hub.assign('dev-v2', b, 1);
  await waitInstalled(agent, b.bundleId);
});
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

interface Raw { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

function raw(method: string, path: string, body?: Buffer | string, headers: Record<string, string | number> = {}, to = port): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const b = body === undefined ? undefined : Buffer.from(body);
    const req = request({ host: '127.0.0.1', port: to, method, path, headers: { ...(b ? { 'content-length': b.length } : {}), ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end(b);
  });
}

/** A binary-extension request: the JSON header text, then the tensor bytes, with the header's length. */
function binaryRequest(header: string, ...tensors: Buffer[]): [Buffer, Record<string, string | number>] {
  const h = Buffer.from(header, 'utf8');
  return [Buffer.concat([h, ...tensors]), { 'content-type': 'application/octet-stream', 'inference-header-content-length': h.length }];
}

const f32 = (...xs: number[]) => { const b = Buffer.alloc(4 * xs.length); xs.forEach((x, i) => b.writeFloatLE(x, 4 * i)); return b; };
const i64 = (...xs: bigint[]) => { const b = Buffer.alloc(8 * xs.length); xs.forEach((x, i) => b.writeBigInt64LE(x, 8 * i)); return b; };
/** BYTES: per element a 4-byte little-endian length, then the bytes. */
const bytesOf = (...xs: string[]) => Buffer.concat(xs.flatMap((s) => { const d = Buffer.from(s, 'utf8'); const n = Buffer.alloc(4); n.writeUInt32LE(d.length, 0); return [n, d]; }));
const bools = (...xs: number[]) => Buffer.from(xs);

const INFER = '/v2/models/mixed/infer';
const v1 = { x: [[1.5, -2, 3.25, 4], [0, 0.5, -1, 99]], category: [[3], [7]], text: ['héllo', ''], flag: [true, false] };
const jsonInputs = `[
  {"name":"x","shape":[2,4],"datatype":"FP32","data":[1.5,-2,3.25,4,0,0.5,-1,99]},
  {"name":"category","shape":[2,1],"datatype":"INT64","data":[3,7]},
  {"name":"text","shape":[2],"datatype":"BYTES","data":["héllo",""]},
  {"name":"flag","shape":[2],"datatype":"BOOL","data":[true,false]}]`;
const binHeader = (outputs = '') => `{"id":"r-7","inputs":[
  {"name":"x","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}},
  {"name":"category","shape":[2,1],"datatype":"INT64","parameters":{"binary_data_size":16}},
  {"name":"text","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":14}},
  {"name":"flag","shape":[2],"datatype":"BOOL","parameters":{"binary_data_size":2}}]${outputs}}`;
const binTensors = () => [f32(1.5, -2, 3.25, 4, 0, 0.5, -1, 99), i64(3n, 7n), bytesOf('héllo', ''), bools(1, 0)];

/** Split a binary-extension response into its JSON header and the bytes after it. */
function splitResponse(r: Raw): { head: any; rest: Buffer } {
  const n = Number(r.headers['inference-header-content-length']);
  expect(Number.isInteger(n) && n > 0 && n <= r.body.length).toBe(true);
  return { head: JSON.parse(r.body.subarray(0, n).toString('utf8')), rest: r.body.subarray(n) };
}

async function expected() {
  const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: v1 }));
  expect(r.status).toBe(200);
  return r.json.outputs as Record<string, { dims: number[]; data: unknown[] }>;
}

async function v2Error(status: number, code: string, body: Buffer | string, headers: Record<string, string | number>, path = INFER) {
  const r = await raw('POST', path, body, headers);
  expect(r.status, r.body.toString()).toBe(status);
  const j = JSON.parse(r.body.toString('utf8'));
  // required_api.md: the error object is {"error": "<error message string>"}; the code rides beside it.
  expect(typeof j.error).toBe('string');
  expect(j.error.length).toBeGreaterThan(20);
  expect(j.code).toBe(code);
  return j;
}
const JSON_TYPE = { 'content-type': 'application/json' };

describe('Open Inference Protocol: health and metadata', () => {
  it('answers live, ready, server and model metadata, and 404 for other models or versions', async () => {
    const live = await raw('GET', '/v2/health/live');
    expect([live.status, live.body.length]).toEqual([200, 0]);
    expect((await raw('GET', '/v2/health/ready')).status).toBe(200);
    const server = JSON.parse((await raw('GET', '/v2')).body.toString());
    expect(server.extensions).toContain('binary_tensor_data');
    expect(server.name).toBe('fleetcast-agent');
    const meta = JSON.parse((await raw('GET', '/v2/models/mixed')).body.toString());
    expect(meta).toEqual({
      name: 'mixed', versions: ['3'], platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'x', datatype: 'FP32', shape: [-1, 4] }, { name: 'category', datatype: 'INT64', shape: [-1, 1] },
        { name: 'text', datatype: 'BYTES', shape: [-1] }, { name: 'flag', datatype: 'BOOL', shape: [-1] },
      ],
      outputs: [
        { name: 'y', datatype: 'FP32', shape: [-1, 2] }, { name: 'label', datatype: 'INT64', shape: [-1] },
        { name: 'echo', datatype: 'BYTES', shape: [-1] }, { name: 'negated', datatype: 'BOOL', shape: [-1] },
      ],
    });
    expect(JSON.parse((await raw('GET', '/v2/models/mixed/versions/3')).body.toString())).toEqual(meta);
    expect((await raw('GET', '/v2/models/mixed/ready')).status).toBe(200);
    expect((await raw('GET', '/v2/models/mixed/versions/3/ready')).status).toBe(200);
    for (const p of ['/v2/models/other', '/v2/models/mixed/versions/2', '/v2/models/other/ready']) {
      const r = await raw('GET', p);
      expect(r.status, p).toBe(404);
      expect(JSON.parse(r.body.toString()).code).toBe('AGENT_ERR_MODEL_NOT_FOUND');
    }
    const unknown = await raw('GET', '/v2/repository/index');
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body.toString())).toMatchObject({ error: expect.stringContaining('No such endpoint'), code: 'AGENT_ERR_NOT_FOUND' });
    const m = await raw('POST', '/v2/models/mixed', '{}', JSON_TYPE);
    expect([m.status, m.headers.allow]).toEqual([405, 'GET, HEAD']);
  });
});

describe('Open Inference Protocol: inference', () => {
  it('JSON tensors (float32 + int64 + BYTES + BOOL) give the same answer as /v1/predict, counted like it', async () => {
    const want = await expected();
    const before = agent.status().predictions.requests;
    const r = await raw('POST', INFER, `{"id":"q1","inputs":${jsonInputs}}`, JSON_TYPE);
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.headers['inference-header-content-length']).toBeUndefined();
    const j = JSON.parse(r.body.toString());
    expect([j.model_name, j.model_version, j.id]).toEqual(['mixed', '3', 'q1']);
    const by = Object.fromEntries(j.outputs.map((o: any) => [o.name, o]));
    expect(by.y).toEqual({ name: 'y', datatype: 'FP32', shape: [2, 2], data: want.y.data });
    expect(by.label).toEqual({ name: 'label', datatype: 'INT64', shape: [2], data: want.label.data });
    expect(by.echo.data).toEqual(['héllo', '']);
    expect(by.negated).toEqual({ name: 'negated', datatype: 'BOOL', shape: [2], data: [false, true] });
    expect(agent.status().predictions.requests).toBe(before + 1);
    // Nested data (some clients send it) is accepted in the same row-major order.
    const nested = jsonInputs.replace('[1.5,-2,3.25,4,0,0.5,-1,99]', '[[1.5,-2,3.25,4],[0,0.5,-1,99]]');
    const n = JSON.parse((await raw('POST', '/v2/models/mixed/versions/3/infer', `{"inputs":${nested}}`, JSON_TYPE)).body.toString());
    expect(n.outputs.find((o: any) => o.name === 'y').data).toEqual(want.y.data);
  });

  it('binary tensors in, binary and JSON outputs out, by the extension layout', async () => {
    const want = await expected();
    const before = agent.status().predictions.requests;
    const [body, headers] = binaryRequest(binHeader(',"outputs":[{"name":"y","parameters":{"binary_data":true}},{"name":"label"},{"name":"echo","parameters":{"binary_data":true}}]'), ...binTensors());
    const r = await raw('POST', INFER, body, headers);
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.headers['content-type']).toBe('application/octet-stream');
    const { head, rest } = splitResponse(r);
    expect(head.id).toBe('r-7');
    // Only the outputs asked for, in the order asked.
    expect(head.outputs.map((o: any) => o.name)).toEqual(['y', 'label', 'echo']);
    const [y, label, echo] = head.outputs;
    expect([y.datatype, y.shape, y.parameters.binary_data_size, y.data]).toEqual(['FP32', [2, 2], 16, undefined]);
    expect(label).toEqual({ name: 'label', datatype: 'INT64', shape: [2], data: want.label.data });
    expect(echo.parameters.binary_data_size).toBe(4 + Buffer.byteLength('héllo') + 4);
    expect(rest.length).toBe(16 + echo.parameters.binary_data_size);
    const ys = [0, 1, 2, 3].map((i) => rest.readFloatLE(4 * i));
    expect(ys).toEqual(want.y.data);
    const e = rest.subarray(16);
    expect(e.readUInt32LE(0)).toBe(6);
    expect(e.subarray(4, 10).toString('utf8')).toBe('héllo');
    expect(e.readUInt32LE(10)).toBe(0);
    expect(agent.status().predictions.requests).toBe(before + 1);
  });

  it('binary_data_output makes every output binary (an output can opt out)', async () => {
    const head = binHeader(',"parameters":{"binary_data_output":true},"outputs":[{"name":"label"},{"name":"negated"},{"name":"y","parameters":{"binary_data":false}}]');
    const r = await raw('POST', INFER, ...binaryRequest(head, ...binTensors()));
    expect(r.status, r.body.toString()).toBe(200);
    const { head: h, rest } = splitResponse(r);
    expect(h.outputs.map((o: any) => o.parameters?.binary_data_size ?? 'json')).toEqual([16, 2, 'json']);
    expect([rest.readBigInt64LE(0), rest.readBigInt64LE(8)]).toEqual((await expected()).label.data.map((v) => BigInt(v as number)));
    expect([...rest.subarray(16)]).toEqual([0, 1]);
  });

  it('takes a binary request without Content-Type, as Triton\'s client sends it (its custom header forces a browser preflight)', async () => {
    const [body, headers] = binaryRequest(binHeader(), ...binTensors());
    const { 'content-type': _type, ...untyped } = headers;
    expect((await raw('POST', INFER, body, untyped)).status).toBe(200);
    // Without that header a missing type is refused: a page can POST an untyped Blob without a preflight.
    const r = await raw('POST', INFER, `{"inputs":${jsonInputs}}`);
    expect([r.status, JSON.parse(r.body.toString()).code]).toEqual([415, 'AGENT_ERR_CONTENT_TYPE']);
  });

  it('mixes JSON and binary inputs in one request', async () => {
    const head = `{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[1.5,-2,3.25,4,0,0.5,-1,99]},
      {"name":"category","shape":[2,1],"datatype":"INT64","parameters":{"binary_data_size":16}},
      {"name":"text","shape":[2],"datatype":"BYTES","data":["héllo",""]},{"name":"flag","shape":[2],"datatype":"BOOL","parameters":{"binary_data_size":2}}]}`;
    const r = await raw('POST', INFER, ...binaryRequest(head, i64(3n, 7n), bools(1, 0)));
    expect(r.status, r.body.toString()).toBe(200);
    expect(JSON.parse(r.body.toString()).outputs[0].data).toEqual((await expected()).y.data);
  });
});

describe('Open Inference Protocol: errors', () => {
  it('refuses each kind of bad request with the v1 codes, in the v2 error shape, without running the model', async () => {
    const before = agent.status().predictions.requests;
    const jsonWith = (inputs: string) => `{"inputs":${inputs}}`;
    await v2Error(404, 'AGENT_ERR_MODEL_NOT_FOUND', jsonWith(jsonInputs), JSON_TYPE, '/v2/models/nope/infer');
    await v2Error(404, 'AGENT_ERR_MODEL_NOT_FOUND', jsonWith(jsonInputs), JSON_TYPE, '/v2/models/mixed/versions/9/infer');
    await v2Error(400, 'AGENT_ERR_INPUT_TYPE', jsonWith(jsonInputs.replace('"datatype":"FP32"', '"datatype":"FP64"')), JSON_TYPE);
    // Named dynamic dimension "batch" is 2 in x but 1 in category.
    const shape = await v2Error(400, 'AGENT_ERR_INPUT_SHAPE', jsonWith(jsonInputs.replace('"shape":[2,1],"datatype":"INT64","data":[3,7]', '"shape":[1,1],"datatype":"INT64","data":[3]')), JSON_TYPE);
    expect(shape.details.input).toBe('category');
    await v2Error(400, 'AGENT_ERR_INPUT_SHAPE', jsonWith(jsonInputs.replace('"shape":[2,4]', '"shape":[2,5]')), JSON_TYPE);
    await v2Error(400, 'AGENT_ERR_INPUT_SHAPE', jsonWith(jsonInputs.replace('-1,99]', '-1]')), JSON_TYPE);
    const nan = await v2Error(400, 'AGENT_ERR_INPUT_NAN', jsonWith(jsonInputs.replace('-1,99]', '-1,null]')), JSON_TYPE);
    expect(nan.details).toEqual({ input: 'x', index: [1, 3] });
    await v2Error(400, 'AGENT_ERR_INPUT_RANGE', jsonWith(jsonInputs.replace('-1,99]', '-1,101]')), JSON_TYPE);
    await v2Error(400, 'AGENT_ERR_INPUT_TYPE', jsonWith(jsonInputs.replace('"data":[3,7]', '"data":[3,7.5]')), JSON_TYPE);
    await v2Error(400, 'AGENT_ERR_UNKNOWN_INPUT', jsonWith(jsonInputs.replace('"name":"flag"', '"name":"flags"')), JSON_TYPE);
    await v2Error(400, 'AGENT_ERR_MISSING_INPUT', jsonWith(jsonInputs.replace(/,\s*\{"name":"flag"[^}]*\}/, '')), JSON_TYPE);
    await v2Error(400, 'AGENT_ERR_BATCH_TOO_LARGE', jsonWith(`[{"name":"x","shape":[9,4],"datatype":"FP32","data":[${Array(36).fill(1)}]}]`), JSON_TYPE);
    await v2Error(400, 'AGENT_ERR_UNKNOWN_OUTPUT', `{"inputs":${jsonInputs},"outputs":[{"name":"z"}]}`, JSON_TYPE);
    await v2Error(400, 'AGENT_ERR_BAD_JSON', '{"inputs":[', JSON_TYPE);
    await v2Error(400, 'AGENT_ERR_BAD_REQUEST', '{"inputs":{}}', JSON_TYPE);
    await v2Error(415, 'AGENT_ERR_CONTENT_TYPE', jsonWith(jsonInputs), { 'content-type': 'text/plain' });

    // Binary: x claims 12 bytes (shape [2,4] FP32 needs 32), the rest of the body shifts accordingly.
    const sized = binHeader().replace('"binary_data_size":32', '"binary_data_size":12');
    await v2Error(400, 'AGENT_ERR_BINARY_LAYOUT', ...binaryRequest(sized, f32(1, 2, 3), i64(3n, 7n), bytesOf('héllo', ''), bools(1, 0)));
    // The sizes add up to less than the body: bytes nobody claims.
    await v2Error(400, 'AGENT_ERR_BINARY_LAYOUT', ...binaryRequest(binHeader(), ...binTensors(), Buffer.from([0, 0, 0])));
    // The sizes add up to more than the body.
    await v2Error(400, 'AGENT_ERR_BINARY_LAYOUT', ...binaryRequest(binHeader(), ...binTensors().slice(0, 3)));
    // Inference-Header-Content-Length beyond the body.
    const [body] = binaryRequest(binHeader(), ...binTensors());
    await v2Error(400, 'AGENT_ERR_BINARY_LAYOUT', body, { 'content-type': 'application/octet-stream', 'inference-header-content-length': body.length + 1 });
    await v2Error(400, 'AGENT_ERR_BINARY_LAYOUT', body, { 'content-type': 'application/octet-stream', 'inference-header-content-length': '-5' });
    // binary_data_size without the header that says where the JSON ends.
    await v2Error(400, 'AGENT_ERR_BINARY_LAYOUT', binHeader(), JSON_TYPE);
    // A BYTES element whose length prefix runs past its tensor.
    const cut = Buffer.concat([bytesOf('héllo'), Buffer.from([200, 0, 0, 0, 65])]);
    await v2Error(400, 'AGENT_ERR_BINARY_LAYOUT', ...binaryRequest(binHeader().replace('"binary_data_size":14', `"binary_data_size":${cut.length}`), f32(1.5, -2, 3.25, 4, 0, 0.5, -1, 99), i64(3n, 7n), cut, bools(1, 0)));
    const nanBin = await v2Error(400, 'AGENT_ERR_INPUT_NAN', ...binaryRequest(binHeader(), f32(1.5, -2, 3.25, 4, 0, Number.NaN, -1, 99), ...binTensors().slice(1)));
    expect(nanBin.details).toEqual({ input: 'x', index: [1, 1] });
    const range = await v2Error(400, 'AGENT_ERR_INPUT_RANGE', ...binaryRequest(binHeader(), f32(1.5, -2, 3.25, 4, 0, 0.5, -1, 1e6), ...binTensors().slice(1)));
    expect(range.details).toEqual({ input: 'x', index: [1, 3] });
    await v2Error(400, 'AGENT_ERR_INPUT_TYPE', ...binaryRequest(binHeader(), ...binTensors().slice(0, 3), bools(1, 2)));
    expect(agent.status().predictions.requests).toBe(before);
    expect(agent.status().predictions.lastCodes[0].code).toBe('AGENT_ERR_INPUT_TYPE');
  });

  it('refuses an oversized body with 413, declared or streamed, and keeps serving', async () => {
    const big = Buffer.concat([Buffer.from(binHeader()), Buffer.alloc(MAX_BODY)]);
    await v2Error(413, 'AGENT_ERR_BODY_TOO_LARGE', big, { 'content-type': 'application/octet-stream', 'inference-header-content-length': 10 });
    const streamed = await new Promise<Raw>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: INFER, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      });
      req.on('error', reject);
      for (let i = 0; i < 4; i++) req.write(Buffer.alloc(MAX_BODY / 2, 32));
      req.end();
    });
    expect(streamed.status).toBe(413);
    expect(JSON.parse(streamed.body.toString()).code).toBe('AGENT_ERR_BODY_TOO_LARGE');
    expect((await raw('POST', INFER, ...binaryRequest(binHeader(), ...binTensors()))).status).toBe(200);
  });
});

describe('Open Inference Protocol: robustness and the shared predict path', () => {
  it('survives 600 malformed binary and JSON requests in a row, all 4xx, then serves a valid one', async () => {
    let seed = 12345;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    const [good, goodHeaders] = binaryRequest(binHeader(), ...binTensors());
    const headerLength = Number(goodHeaders['inference-header-content-length']);
    const statuses = new Set<number>();
    for (let i = 0; i < 600; i++) {
      const body = Buffer.from(good);
      // Flip a few bytes anywhere (header JSON or tensor bytes), and sometimes lie about the header length.
      for (let k = 0; k < 1 + rnd(4); k++) body[rnd(body.length)] = rnd(256);
      const hl = rnd(4) === 0 ? rnd(body.length + 20) : headerLength;
      const cut = rnd(5) === 0 ? body.subarray(0, rnd(body.length)) : body;
      const r = await raw('POST', INFER, cut, { 'content-type': rnd(2) ? 'application/octet-stream' : 'application/json', 'inference-header-content-length': hl });
      expect(r.status, r.body.toString().slice(0, 300)).toBeLessThan(500);
      statuses.add(r.status);
    }
    expect(statuses.has(400)).toBe(true);
    expect((await raw('POST', INFER, good, goodHeaders)).status).toBe(200);
  });

  it('v2 predictions count in the probation window of a new model exactly like v1 ones', async () => {
    const a = fx.newAgent('dev-v2-probation', { listen: '127.0.0.1:0', probationMs: 3_600_000, probationMinRequests: 1000 });
    await a.start();
    const first = fx.hub.add(await makeBundle(fx.keys, { name: 'mixed', version: 1, model: buildMixedIo(1) }));
    await fx.hub.assign('dev-v2-probation', first, 1);
    await waitInstalled(a, first.bundleId);
    const second = fx.hub.add(await makeBundle(fx.keys, { name: 'mixed', version: 2, model: buildMixedIo(2) }));
    await fx.hub.assign('dev-v2-probation', second, 2);
    await waitFor(() => a.status().probation?.bundleId === second.bundleId, 'probation of version 2');
    const post = async (path: string, body: Buffer | string, headers: Record<string, string | number>) => (await raw('POST', path, body, headers, a.address!.port)).status;
    const before = a.status();
    expect(await post('/v1/predict', JSON.stringify({ inputs: v1 }), JSON_TYPE)).toBe(200);
    expect(await post('/v2/models/mixed/infer', `{"inputs":${jsonInputs}}`, JSON_TYPE)).toBe(200);
    expect(await post('/v2/models/mixed/versions/2/infer', ...binaryRequest(binHeader(), ...binTensors()))).toBe(200);
    // Refused before the model runs, in either API: not a probation sample.
    expect(await post('/v1/predict', JSON.stringify({ inputs: { ...v1, flag: [1, 0] } }), JSON_TYPE)).toBe(400);
    expect(await post('/v2/models/mixed/infer', `{"inputs":${jsonInputs.replace('[true,false]', '[1,0]')}}`, JSON_TYPE)).toBe(400);
    expect(await post('/v2/models/mixed/versions/1/infer', `{"inputs":${jsonInputs}}`, JSON_TYPE)).toBe(404);
    const after = a.status();
    expect(after.probation!.requests - before.probation!.requests).toBe(3);
    expect(after.predictions.requests - before.predictions.requests).toBe(3);
    expect(after.predictions.lastCodes.slice(0, 3).map((c) => c.code)).toEqual(['AGENT_ERR_MODEL_NOT_FOUND', 'AGENT_ERR_INPUT_TYPE', 'AGENT_ERR_INPUT_TYPE']);
  });

  it('telemetry counts v2 requests, samples and refusals exactly like v1 ones on the same inputs', async () => {
    const a = fx.newAgent('dev-v2-telemetry', { listen: '127.0.0.1:0', telemetry: { ...TELEMETRY_DEFAULTS, windowMs: 150, sampleRate: 1 } });
    const reports: TelemetryReport[] = [];
    const spy = await mqtt.connectAsync(fx.broker.url, { clientId: `spy-${process.pid}`, reconnectPeriod: 0 });
    try {
      spy.on('message', (_t, p) => { const r = decodeTelemetry(p); if (r.deviceId === 'dev-v2-telemetry' && r.part === 0) reports.push(r); });
      await spy.subscribeAsync(topics.allDevices('telemetry'), { qos: 1 });
      await a.start();
      const b = fx.hub.add(await makeBundle(fx.keys, { name: 'mixed', version: 1, model: buildMixedIo(3) }));
      await fx.hub.assign('dev-v2-telemetry', b, 1);
      await waitInstalled(a, b.bundleId);
      const send = async (path: string, body: Buffer | string, headers: Record<string, string | number>) => (await raw('POST', path, body, headers, a.address!.port)).status;
      /** Sum of the reports that arrive until `n` requests are accounted for. */
      const collect = async (n: number) => {
        const from = reports.length;
        await waitFor(() => reports.slice(from).reduce((k, r) => k + r.requests, 0) >= n, `telemetry for ${n} requests`);
        const rs = reports.slice(from);
        const failures: Record<string, number> = {};
        for (const r of rs) for (const [c, k] of Object.entries(r.failures)) failures[c] = (failures[c] ?? 0) + k;
        return { requests: rs.reduce((k, r) => k + r.requests, 0), sampled: rs.reduce((k, r) => k + r.sampled, 0), failures };
      };
      const badFlag = { ...v1, flag: [1, 0] };
      expect(reports).toEqual([]); // windows without requests send nothing: each phase below has its own reports
      for (const body of [{ inputs: v1 }, { inputs: v1 }, { inputs: badFlag }]) await send('/v1/predict', JSON.stringify(body), JSON_TYPE);
      const viaV1 = await collect(3);
      expect(await send(INFER, `{"inputs":${jsonInputs}}`, JSON_TYPE)).toBe(200);
      expect(await send(INFER, ...binaryRequest(binHeader(), ...binTensors()))).toBe(200);
      expect(await send(INFER, `{"inputs":${jsonInputs.replace('[true,false]', '[1,0]')}}`, JSON_TYPE)).toBe(400);
      const viaV2 = await collect(3);
      expect(viaV1).toEqual({ requests: 3, sampled: 2, failures: { AGENT_ERR_INPUT_TYPE: 1 } });
      expect(viaV2).toEqual(viaV1);
    } finally {
      await spy.endAsync();
    }
  });
});
