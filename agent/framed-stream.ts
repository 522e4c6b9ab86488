/**
 * The agent's MQTT connection over plain TCP, read without a buffer per read:
 * the socket reads into one process-wide buffer (net's `onread`), whose bytes
 * are copied into whole packets (mqtt-framer.ts) before the callback returns,
 * and mqtt.js reads those packets from this stream. Writes go to the socket,
 * each packet's pieces in one write (mqtt.js corks them).
 * Over TLS (framedTlsStream) the decrypted reads arrive as buffers of their own
 * and go through the same framer, so a device on mqtts:// gets the same packet
 * bound and malformed-length check as on plain TCP. Websocket URLs keep mqtt.js's
 * own stream.
 */
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { MqttFramer } from './mqtt-framer.js';
import type { PayloadMatcher } from './payload-matcher.js';

/** Shared by every connection of the process: each read is copied out before the next can happen. */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

export type FramedStream = Duplex & {
  setNoDelay(on: boolean): void;
  /**
   * performance.now() of the latest socket read. A packet reaches mqtt.js only once whole, and a
   * 4 MiB chunk on a slow link takes longer than a keepalive: its bytes still show the broker is
   * alive (broker-client.ts, keepAliveWhileReceiving).
   */
  lastReadAt: number;
};

/** `matcher`: the simulator's shared payloads (payload-matcher.ts); a device has none. */
export function framedTcpStream(host: string, port: number, matcher?: PayloadMatcher): FramedStream {
  const framer = new MqttFramer(undefined, matcher);
  let stream: FramedStream | null = null;
  const socket = net.connect({
    host, port,
    onread: {
      buffer: READ_BUFFER,
      // false pauses the socket until mqtt.js has read what was pushed (read() below resumes it).
      callback: (n, buf) => frameRead(stream!, framer, buf.subarray(0, n)),
    },
  });
  stream = framedDuplex(socket, 'connect');
  return stream;
}

/**
 * mqtts:// — `ca`: the CA file's certificates (mqttCaPath), else Node's own. The server name is the host unless
 * it is an IP address (RFC 6066 3), which is then checked against the certificate's IP SANs, as mqtt.js does.
 * The certificate is always checked, as mqtt.js's own TLS stream did (it sets rejectUnauthorized itself): left
 * to Node's default, NODE_TLS_REJECT_UNAUTHORIZED=0 in the agent's environment would accept any certificate
 * and hand the device's MQTT password to whoever answers.
 */
export function framedTlsStream(host: string, port: number, ca?: Buffer): FramedStream {
  const framer = new MqttFramer();
  let stream: FramedStream | null = null;
  const socket = tls.connect({ host, port, rejectUnauthorized: true, ...(ca ? { ca } : {}), ...(net.isIP(host) ? {} : { servername: host }) });
  // Paused until mqtt.js has read what was pushed (read() resumes it).
  socket.on('data', (buf: Buffer) => { if (!frameRead(stream!, framer, buf)) socket.pause(); });
  stream = framedDuplex(socket, 'secureConnect');
  return stream;
}

/**
 * One socket read into whole packets pushed to `stream`; false when the socket should pause: mqtt.js has not read
 * what was pushed, or the packet was malformed or oversized, and the connection is dropped with the framer's coded
 * error (mqtt.js reports it).
 */
function frameRead(stream: FramedStream, framer: MqttFramer, bytes: Uint8Array): boolean {
  stream.lastReadAt = performance.now();
  let more = true;
  const bad = framer.push(bytes, (p) => { more = stream.push(p); });
  if (bad) { stream.destroy(bad); return false; }
  return more;
}

/** The stream mqtt.js reads whole packets from and writes through; `connected`: the socket's event that means it may talk. */
function framedDuplex(socket: net.Socket, connected: 'connect' | 'secureConnect'): FramedStream {
  const s = new Duplex({
    // In onread mode resume() restarts a socket whose callback asked it to stop; a TLS socket was paused above.
    read() { socket.resume(); },
    write(chunk: Buffer, _enc, cb) { socket.write(chunk, cb); },
    writev(chunks, cb) {
      socket.cork();
      chunks.forEach(({ chunk }, i) => { socket.write(chunk as Buffer, i === chunks.length - 1 ? cb : undefined); });
      socket.uncork();
    },
    final(cb) { socket.end(cb); },
    destroy(err, cb) { socket.destroy(err ?? undefined); cb(err); },
  }) as FramedStream;
  s.setNoDelay = (on) => { socket.setNoDelay(on); };
  s.lastReadAt = -Infinity;
  // Flowing, so that the end of the stream is seen ('end'); the bytes themselves only go to the read callback.
  socket.resume();
  socket.on(connected, () => s.emit('connect'));
  socket.on('end', () => s.push(null));
  socket.on('error', (e) => s.destroy(e));
  socket.on('close', () => { if (!s.destroyed) s.destroy(); });
  return s;
}
