/**
 * Attacks on the agent's local API from a web page on the device, against a
 * real agent with a real installed bundle: a cross-origin text/plain POST (a
 * "simple request" a browser sends without preflight), DNS rebinding (a page
 * whose own name now resolves to 127.0.0.1, so its requests carry
 * `Host: evil.example`), and a predict without the configured bearer token.
 * Each refused attack must also leave the prediction counters untouched: the
 * model did not run.
 */
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { fixture, http, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';

let fx: Fixture;
let open: Agent;
let guarded: Agent;
const TOKEN = 'c2VjcmV0LXRva2VuLWZvci10ZXN0cw-0123456789';

beforeAll(async () => {
  fx = await fixture();
  const b = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 61 } }));
  const tokenFile = join(tempDir('fleetcast-token-'), 'api-token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  open = fx.newAgent('dev-open', { listen: '127.0.0.1:0', allowedHosts: ['kiosk.local'], allowedOrigins: ['http://kiosk.local:8080'] });
  guarded = fx.newAgent('dev-token', { listen: '127.0.0.1:0', apiTokenFile: tokenFile });
  await open.start();
  await guarded.start();
  await fx.hub.assign('dev-open', b, 1);
  await fx.hub.assign('dev-token', b, 1);
  await waitInstalled(open, b.bundleId);
  await waitInstalled(guarded, b.bundleId);
});
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

const body = JSON.stringify({ inputs: { x: [[1, 2, 3, 4]], category: [[1]] } });
const requests = (a: Agent) => a.status().predictions.requests;

describe('agent local API: attacks from a web page', () => {
  it('refuses a cross-origin text/plain POST to /v1/predict (no prediction runs)', async () => {
    const before = requests(open);
    const r = await http(open.address!.port, 'POST', '/v1/predict', body, { 'content-type': 'text/plain', origin: 'http://evil.example' });
    expect([r.status, r.json.error?.code]).toEqual([403, 'AGENT_ERR_ORIGIN']);
    // An old browser (or a form) without Origin: the text/plain type alone is refused.
    const noOrigin = await http(open.address!.port, 'POST', '/v1/predict', body, { 'content-type': 'text/plain' });
    expect([noOrigin.status, noOrigin.json.error?.code]).toEqual([415, 'AGENT_ERR_CONTENT_TYPE']);
    const form = await http(open.address!.port, 'POST', '/v1/predict', body, { 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    expect(requests(open)).toBe(before);
  });

  it('refuses a DNS-rebinding request (Host: evil.example) to /v1/status and to predict', async () => {
    const st = await http(open.address!.port, 'GET', '/v1/status', undefined, { host: 'evil.example' });
    expect([st.status, st.json.error?.code]).toEqual([403, 'AGENT_ERR_HOST']);
    expect(JSON.stringify(st.json)).not.toContain('dev-open');
    const withPort = await http(open.address!.port, 'GET', '/', undefined, { host: `evil.example:${open.address!.port}` });
    expect(withPort.status).toBe(403);
    const before = requests(open);
    const p = await http(open.address!.port, 'POST', '/v1/predict', body, { host: 'evil.example' });
    expect(p.status).toBe(403);
    expect(requests(open)).toBe(before);
  });

  it('refuses a CORS preflight from another origin', async () => {
    const r = await http(open.address!.port, 'OPTIONS', '/v1/predict', undefined, { origin: 'http://evil.example', 'access-control-request-method': 'POST' });
    expect(r.status).toBe(403);
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('refuses predict without the bearer token when apiTokenFile is set, and with a wrong one', async () => {
    const port = guarded.address!.port;
    const before = requests(guarded);
    const none = await http(port, 'POST', '/v1/predict', body);
    expect([none.status, none.json.error?.code]).toEqual([401, 'AGENT_ERR_UNAUTHORIZED']);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    const wrong = await http(port, 'POST', '/v1/predict', body, { authorization: `Bearer ${TOKEN}x` });
    expect(wrong.status).toBe(401);
    expect(requests(guarded)).toBe(before);
    const ok = await http(port, 'POST', '/v1/predict', body, { authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(200);
    expect(requests(guarded)).toBe(before + 1);
    // Status stays readable without the token (loopback, Host and Origin checked): a field engineer's browser sends none.
    expect((await http(port, 'GET', '/v1/status')).status).toBe(200);
  });

  it('closes the connection after refusing an unread body, instead of reading whatever the client keeps sending', async () => {
    const r = await new Promise<{ status: number; connection?: string; closed: boolean }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: guarded.address!.port, method: 'POST', path: '/v1/predict', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        res.on('end', () => {
          // The server ends the socket after the answer although the client never finished its body.
          const sock = req.socket!;
          if (sock.destroyed || sock.readableEnded) resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, closed: true });
          else sock.once('close', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, closed: true }));
        });
      });
      req.on('error', reject);
      req.write('{"inputs": [');
    });
    expect(r).toEqual({ status: 401, connection: 'close', closed: true });
  });

  it('still serves same-host clients, IP literals, configured names and origins', async () => {
    const port = open.address!.port;
    expect((await http(port, 'POST', '/v1/predict', body)).status).toBe(200);
    expect((await http(port, 'POST', '/v1/predict', body, { 'content-type': 'application/json; charset=utf-8', host: `localhost:${port}` })).status).toBe(200);
    expect((await http(port, 'GET', '/v1/status', undefined, { host: `[::1]:${port}` })).status).toBe(200);
    expect((await http(port, 'GET', '/v1/status', undefined, { host: `KIOSK.local:${port}` })).status).toBe(200);
    expect((await http(port, 'GET', '/v1/status', undefined, { host: 'other.local' })).status).toBe(403);
    expect((await http(port, 'POST', '/v1/predict', body, { origin: 'http://kiosk.local:8080' })).status).toBe(200);
    expect((await http(port, 'POST', '/v1/predict', body, { origin: `http://127.0.0.1:${port}` })).status).toBe(200);
    expect((await http(port, 'POST', '/v1/predict', body, { origin: 'null' })).status).toBe(403);
  });
});
