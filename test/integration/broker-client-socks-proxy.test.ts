/**
 * mqtt.js sends its TCP and TLS connections through the SOCKS proxy that MQTTJS_SOCKS_PROXY names (read in
 * mqtt.connect; the agent passes no socksProxy option of its own). The agent's framed streams
 * (agent/framed-stream.ts) connect directly, so with the variable set connectMqtt keeps mqtt.js's stream: a
 * device behind a proxy reaches its broker through it, over mqtt:// and mqtts:// alike, instead of trying a
 * direct connection its network may not allow. The proxy here is a minimal SOCKS5 server (no authentication,
 * CONNECT only) that counts what it relays; the broker answers the CONNECT with a CONNACK and one PUBLISH.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { connectMqtt, type BrokerClient } from '../../agent/broker-client.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { needProgram } from '../helpers/programs.js';

const OPENSSL = needProgram('openssl', 'openssl');

const servers: Server[] = [];
const sockets = new Set<Socket>();
let agent: BrokerClient | null = null;
const envBefore = process.env.MQTTJS_SOCKS_PROXY;

afterEach(async () => {
  await agent?.end();
  agent = null;
  if (envBefore === undefined) delete process.env.MQTTJS_SOCKS_PROXY;
  else process.env.MQTTJS_SOCKS_PROXY = envBefore;
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});
afterAll(() => cleanupTempDirs());

const track = (s: Socket) => { sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)); };

async function listen(server: Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as { port: number }).port;
}

/**
 * A SOCKS5 proxy (RFC 1928: no authentication, CONNECT to an IPv4 address or a name); `relayed` counts its
 * tunnels. Its URL is socks5h://: names are resolved by the proxy, as a proxy for devices usually does.
 */
async function socks5(): Promise<{ url: string; relayed: () => number }> {
  let relayed = 0;
  const port = await listen(createServer((client) => {
    track(client);
    let buf = Buffer.alloc(0);
    let greeted = false;
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!greeted) {
        if (buf.length < 2 || buf.length < 2 + buf[1]) return;
        buf = buf.subarray(2 + buf[1]);
        greeted = true;
        client.write(Buffer.from([5, 0]));
      }
      if (buf.length < 5) return;
      const atyp = buf[3];
      const addrLen = atyp === 1 ? 4 : atyp === 3 ? 1 + buf[4] : 16;
      if (buf.length < 4 + addrLen + 2) return;
      const host = atyp === 1 ? [...buf.subarray(4, 8)].join('.') : buf.subarray(5, 5 + buf[4]).toString();
      const port = buf.readUInt16BE(4 + addrLen);
      const rest = buf.subarray(4 + addrLen + 2);
      // Held until the tunnel is up (a stream left flowing without a 'data' listener drops what it reads).
      client.off('data', onData);
      client.pause();
      const upstream = netConnect({ host, port }, () => {
        relayed++;
        client.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
        if (rest.length > 0) upstream.write(rest);
        client.pipe(upstream).pipe(client);
      });
      track(upstream);
      upstream.on('close', () => client.destroy());
      client.on('close', () => upstream.destroy());
    };
    client.on('data', onData);
  }));
  return { url: `socks5h://127.0.0.1:${port}`, relayed: () => relayed };
}

/** Answers a CONNECT with a CONNACK and a QoS 0 PUBLISH "hello" on topic t. */
function onBrokerSocket(s: Socket): void {
  track(s);
  s.once('data', () => s.write(Buffer.from([0x20, 0x02, 0x00, 0x00, 0x30, 0x08, 0x00, 0x01, 0x74, ...Buffer.from('hello')])));
}

async function receivesThroughProxy(url: string, caPath?: string): Promise<void> {
  const proxy = await socks5();
  process.env.MQTTJS_SOCKS_PROXY = proxy.url;
  agent = connectMqtt({ url, clientId: 'dev-socks', reconnectPeriodMs: 60_000, connectTimeoutMs: 10_000, ...(caPath ? { caPath } : {}) });
  const got: string[] = [];
  agent.onMessage((topic, payload) => { got.push(`${topic} ${payload.toString()}`); });
  await waitFor(() => got.length > 0 || null, 'the message through the proxy', 15_000);
  expect(got).toEqual(['t hello']);
  expect(proxy.relayed()).toBe(1);
}

describe('the agent behind a SOCKS proxy (MQTTJS_SOCKS_PROXY)', () => {
  it('Socks_proxy_env_honoured_over_tcp: an mqtt:// connection goes through the proxy', async () => {
    const port = await listen(createServer(onBrokerSocket));
    await receivesThroughProxy(`mqtt://127.0.0.1:${port}`);
  }, 30_000);

  it.skipIf(!OPENSSL)('Socks_proxy_env_honoured_over_tls: an mqtts:// connection goes through the proxy, its certificate checked', async () => {
    // A host name, not an IP: mqtt.js's TLS over a proxy checks the certificate against the server name it
    // sends, and it sends none for an IP address.
    const dir = tempDir('fleetcast-socks-tls-');
    const certPath = join(dir, 'cert.pem');
    const keyPath = join(dir, 'key.pem');
    execFileSync(OPENSSL!, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', keyPath, '-out', certPath], { stdio: 'ignore' });
    const port = await listen(createTlsServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) }, onBrokerSocket));
    await receivesThroughProxy(`mqtts://localhost:${port}`, certPath);
  }, 30_000);
});
