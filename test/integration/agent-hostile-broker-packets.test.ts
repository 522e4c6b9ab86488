/**
 * A broken or hostile broker against the agent's framed MQTT reads
 * (agent/framed-stream.ts, agent/mqtt-framer.ts). The framer allocates each
 * packet's buffer from its declared remaining length as soon as the fixed
 * header is in: five bytes declaring 256 MB must not allocate 256 MB, and a
 * remaining length longer than 4 bytes is a malformed packet ([MQTT-2.2.3],
 * [MQTT-4.8.0-1]: close the connection). Both drop the connection with a coded
 * error, and the agent tries again on its usual backoff. The broker here is a
 * raw TCP server that answers the CONNECT with a CONNACK and then sends the
 * bad bytes; the client is the agent's own (connectMqtt).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, type BrokerClient, type BrokerFailure } from '../../agent/broker-client.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { needProgram } from '../helpers/programs.js';

const OPENSSL = needProgram('openssl', 'openssl');

let server: Server | null = null;
let agent: BrokerClient | null = null;
const sockets = new Set<Socket>();

afterEach(async () => {
  await agent?.end();
  for (const s of sockets) s.destroy();
  sockets.clear();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  agent = server = null;
});

/** A "broker" that accepts every CONNECT and then sends `bad` (or what `send` says for the nth connection); counts closed connections. */
async function hostileBroker(bad: Buffer, send?: (s: Socket, nth: number) => void, tlsFiles?: { cert: Buffer; key: Buffer }): Promise<{ url: string; closed: () => number }> {
  let closed = 0;
  let connections = 0;
  const onSocket = (s: Socket) => {
    sockets.add(s);
    const nth = connections++;
    s.on('error', () => {});
    s.on('close', () => { closed++; sockets.delete(s); });
    s.once('data', () => { s.write(Buffer.from([0x20, 0x02, 0x00, 0x00])); if (send) send(s, nth); else s.write(bad); });
  };
  server = tlsFiles ? createTlsServer(tlsFiles, onSocket) : createServer(onSocket);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return { url: `${tlsFiles ? 'mqtts' : 'mqtt'}://127.0.0.1:${(server!.address() as { port: number }).port}`, closed: () => closed };
}

function connect(url: string, reconnectPeriodMs = 60_000, onFailure?: (f: BrokerFailure) => void, caPath?: string): BrokerClient {
  return (agent = connectMqtt({ url, clientId: 'dev-hostile', reconnectPeriodMs, connectTimeoutMs: 10_000, keepaliveSec: 600, ...(onFailure ? { onFailure } : {}), ...(caPath ? { caPath } : {}) }));
}

/** A QoS 0 PUBLISH of `payload` on topic t (remaining length under 128). */
const publish = (payload: string) => Buffer.concat([Buffer.from([0x30, 3 + payload.length, 0, 1, 0x74]), Buffer.from(payload)]);

describe('agent against a hostile broker', () => {
  it('Hostile_broker_huge_declared_length: a header declaring 256 MB drops the connection with a coded error, nothing allocated', async () => {
    const before = process.memoryUsage().arrayBuffers;
    // PUBLISH, remaining length 268,435,455 (the largest MQTT allows), and no more.
    const b = await hostileBroker(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]));
    const a = connect(b.url);
    await waitFor(() => b.closed() > 0 || null, 'the agent to drop the connection', 15_000);
    expect(a.failure?.code).toBe('AGENT_ERR_BROKER_UNREACHABLE');
    expect(a.failure?.detail).toMatch(/^AGENT_ERR_BROKER_BAD_PACKET: .*268435455/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
  }, 30_000);

  it('Hostile_broker_malformed_length: a remaining length of 5 bytes drops the connection with a coded error', async () => {
    const b = await hostileBroker(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x01, 0x61]));
    const a = connect(b.url);
    await waitFor(() => b.closed() > 0 || null, 'the agent to drop the connection', 15_000);
    expect(a.failure?.detail).toMatch(/^AGENT_ERR_BROKER_BAD_PACKET: /);
  }, 30_000);

  it('Hostile_broker_protocol_error_drops_connection: a packet mqtt.js refuses (QoS 3 PUBLISH) closes the connection, the next one works', async () => {
    // [MQTT-4.13]: a Malformed Packet or Protocol Error closes the network connection. mqtt.js's parser only emits
    // 'error' and reads on from its next chunk; on TLS or websocket streams that is mid-packet, and here the honest
    // packet behind it in the same write is lost while the connection stays up as if nothing happened.
    const bad = Buffer.from([0x36, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01]);
    const b = await hostileBroker(Buffer.alloc(0), (s, nth) => {
      if (nth === 0) s.write(Buffer.concat([bad, publish('after the bad one')]));
      else s.write(publish('next connection'));
    });
    const failures: BrokerFailure[] = [];
    const a = connect(b.url, 50, (f) => failures.push(f));
    const got: string[] = [];
    a.onMessage((topic, payload) => { got.push(`${topic} ${payload.toString()}`); });
    await waitFor(() => got.length > 0 || null, 'a message on the second connection', 15_000);
    expect(got).toEqual(['t next connection']);
    expect(b.closed()).toBe(1);
    // Reported with what mqtt.js's parser said, not as a lost network.
    expect(failures.map((f) => f.detail)).toEqual([expect.stringMatching(/QoS|qos/)]);
  }, 30_000);

  it('Hostile_broker_ends_mid_packet: a connection cut inside a packet leaves nothing behind; the next connection frames afresh', async () => {
    // First connection: half a PUBLISH, then the broker hangs up. Second: a whole PUBLISH in one write.
    // A framer kept across connections would take the second one as the rest of the first.
    const b = await hostileBroker(Buffer.alloc(0), (s, nth) => {
      if (nth === 0) s.end(publish('cut short').subarray(0, 6));
      else s.write(publish('whole'));
    });
    const a = connect(b.url, 50);
    const got: string[] = [];
    a.onMessage((topic, payload) => { got.push(`${topic} ${payload.toString()}`); });
    await waitFor(() => got.length > 0 || null, 'a message on the second connection', 15_000);
    expect(got).toEqual(['t whole']);
    expect(b.closed()).toBe(1);
  }, 30_000);
});

describe.skipIf(!OPENSSL)('agent against a hostile broker over TLS (mqtts://)', () => {
  let files: { cert: Buffer; key: Buffer; certPath: string };
  beforeAll(() => {
    const dir = tempDir('fleetcast-hostile-tls-');
    const certPath = join(dir, 'cert.pem');
    const keyPath = join(dir, 'key.pem');
    execFileSync(OPENSSL!, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyPath, '-out', certPath], { stdio: 'ignore' });
    files = { cert: readFileSync(certPath), key: readFileSync(keyPath), certPath };
  });
  afterAll(() => cleanupTempDirs());

  it('Hostile_tls_broker_huge_declared_length: over TLS too, a header declaring 256 MB drops the connection with a coded error', async () => {
    // mqtt.js's own TLS stream has no packet bound: it would buffer up to the declared 256 MB.
    const b = await hostileBroker(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), undefined, files);
    const a = connect(b.url, 60_000, undefined, files.certPath);
    await waitFor(() => b.closed() > 0 || null, 'the agent to drop the connection', 15_000);
    expect(a.failure?.detail).toMatch(/^AGENT_ERR_BROKER_BAD_PACKET: .*268435455/);
  }, 30_000);

  it('Tls_broker_messages_framed: whole packets split across TLS records reach the agent, and an unknown CA is refused', async () => {
    const payload = 'x'.repeat(100);
    // Remaining length 103: one length byte.
    const whole = publish(payload);
    const b = await hostileBroker(Buffer.alloc(0), (s) => {
      // One byte per write: each its own TLS record, so the framer sees the packet in pieces.
      for (const byte of whole) s.write(Buffer.from([byte]));
    }, files);
    const a = connect(b.url, 60_000, undefined, files.certPath);
    const got: string[] = [];
    a.onMessage((topic, p) => { got.push(`${topic} ${p.toString()}`); });
    await waitFor(() => got.length > 0 || null, 'the message over TLS', 15_000);
    expect(got).toEqual([`t ${payload}`]);
    await a.end();
    // Without the CA file Node's own CAs do not know this self-signed certificate: the handshake fails, coded by Node.
    const failures: BrokerFailure[] = [];
    connect(b.url, 60_000, (f) => failures.push(f));
    await waitFor(() => failures[0] ?? null, 'the refused handshake', 15_000);
    expect(failures[0].detail).toMatch(/SELF_SIGNED|self.signed/i);
  }, 30_000);

  it('Tls_broker_certificate_checked_despite_env: NODE_TLS_REJECT_UNAUTHORIZED=0 does not turn the broker\'s certificate check off', async () => {
    // mqtt.js's own TLS stream set rejectUnauthorized itself, so the variable (set for something else in the
    // agent's environment) never reached the broker connection; the framed stream must not let it either, or
    // the device's CONNECT, password included, goes to any server that answers.
    const b = await hostileBroker(Buffer.alloc(0), (s) => { s.write(publish('from an unchecked server')); }, files);
    const before = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    try {
      const failures: BrokerFailure[] = [];
      const a = connect(b.url, 60_000, (f) => failures.push(f));
      const got: string[] = [];
      a.onMessage((topic, p) => { got.push(`${topic} ${p.toString()}`); });
      await waitFor(() => failures[0] ?? (got.length > 0 || null), 'the refused handshake', 15_000);
      expect(got).toEqual([]);
      expect(failures[0].detail).toMatch(/SELF_SIGNED|self.signed/i);
    } finally {
      if (before === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = before;
    }
  }, 30_000);
});
