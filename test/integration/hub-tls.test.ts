/**
 * The API over HTTPS, on its own address. The compiled hub (authentication on)
 * serves the API with a certificate made by openssl on 127.0.0.1 and its
 * embedded broker on 127.0.0.2: each is reachable only where it is bound. The
 * CLI talks to the HTTPS API when the certificate's CA is given in
 * NODE_EXTRA_CA_CERTS (read by Node at start-up, so every command and fetch
 * trusts it), and refuses the unknown certificate without it.
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli } from '../helpers/build-cli.js';
import { needProgram } from '../helpers/programs.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir } from '../helpers/env.js';
import { startHubProcess, type HubProcess } from '../helpers/hub-process.js';

afterAll(cleanupTempDirs);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
// openssl makes the test certificate; absent → skipped with the run's summary (a failure under CI).
const OPENSSL = needProgram('openssl', 'openssl');

/** Whether a TCP connection to host:port is accepted. */
function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.setTimeout(10_000, () => { s.destroy(); resolve(false); });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

function httpsGet(url: string, ca: Buffer | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!OPENSSL)('HTTPS API and separate bind addresses', () => {
  const keys = makeKeys();
  const dir = tempDir('fleetcast-tls-');
  const cert = join(dir, 'api.crt');
  const key = join(dir, 'api.key');
  let hub: HubProcess;
  let CLI: string;
  let httpPort: number;
  let mqttPort: number;

  beforeAll(async () => {
    execFileSync(OPENSSL!, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=fleetcast test hub',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    CLI = await buildCli(ROOT);
    httpPort = await freePort();
    mqttPort = await freePort();
    hub = await startHubProcess(ROOT, CLI, ['--data', tempDir('fleetcast-hub-'), '--keys', keys.dir, '--log-level', 'warn',
      '--http-host', '127.0.0.1', '--http-port', String(httpPort), '--mqtt-host', '127.0.0.2', '--mqtt-port', String(mqttPort),
      '--http-tls-cert', cert, '--http-tls-key', key]);
  }, 180_000);
  afterAll(async () => { await hub?.stop(); });

  it('HTTPS_API: the hub answers over https with its certificate, and says so in its URL', async () => {
    expect(hub.httpUrl).toBe(`https://127.0.0.1:${httpPort}`);
    expect(hub.mqttUrl).toBe(`mqtt://127.0.0.2:${mqttPort}`);
    const { readFileSync } = await import('node:fs');
    const health = await httpsGet(`${hub.httpUrl}/v1/health`, readFileSync(cert));
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ ok: true });
    // Authentication is on: no token, no devices.
    expect((await httpsGet(`${hub.httpUrl}/v1/devices`, readFileSync(cert))).status).toBe(401);
    // An unknown certificate is refused by a client that was not given the CA.
    await expect(httpsGet(`${hub.httpUrl}/v1/health`, undefined)).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
  });

  it('Separate_bind_addresses: the API is reachable only on 127.0.0.1, the broker only on 127.0.0.2', async () => {
    expect(await reachable('127.0.0.1', httpPort)).toBe(true);
    expect(await reachable('127.0.0.2', httpPort)).toBe(false);
    expect(await reachable('127.0.0.2', mqttPort)).toBe(true);
    expect(await reachable('127.0.0.1', mqttPort)).toBe(false);
  });

  it('the CLI talks to the HTTPS API with NODE_EXTRA_CA_CERTS, and refuses it without', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, FLEETCAST_TOKEN_FILE: hub.tokenFile };
    delete env.NODE_EXTRA_CA_CERTS;
    const ok = await run(process.execPath, [CLI, 'devices', 'list', '--hub', hub.httpUrl, '--json'], { cwd: ROOT, timeout: 60_000, env: { ...env, NODE_EXTRA_CA_CERTS: cert } });
    expect(JSON.parse(ok.stdout)).toEqual([]);
    const refused = await run(process.execPath, [CLI, 'devices', 'list', '--hub', hub.httpUrl], { cwd: ROOT, timeout: 60_000, env }).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error HUB_ERR_UNREACHABLE: .*(SELF_SIGNED|UNABLE_TO_VERIFY|CERT)/m);
  }, 120_000);
});

describe('TLS options go together', () => {
  it('a certificate without a key stops the hub at start-up with HUB_ERR_LISTEN', async () => {
    const { startHub } = await import('../../hub/hub.js');
    const f = join(tempDir('fleetcast-tls-'), 'only.crt');
    writeFileSync(f, 'not used');
    await expect(startHub({ dataDir: tempDir('fleetcast-hub-'), keysDir: makeKeys().dir, httpPort: 0, mqttPort: 0, httpTlsCert: f })).rejects.toMatchObject({ code: 'HUB_ERR_LISTEN', message: expect.stringContaining('httpTlsCert and httpTlsKey go together') });
  });
});
