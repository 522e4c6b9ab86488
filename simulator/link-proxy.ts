/**
 * The network between one group of simulated devices and the broker: a TCP
 * relay on loopback that the group's agents connect through, so a scenario can
 * break what a field network breaks without touching the hub. Down drops every
 * connection and refuses new ones (network loss, a broker restart as the
 * devices see it); a rate limits bytes per second each way (a slow link); a
 * tamper flips a byte in every bundle chunk on its way to a device (chunks
 * tampered in transit: the agent's per-chunk sha256 check must refuse them).
 *
 * Tampering reads the MQTT framing of the broker → device stream (fixed
 * header, remaining length, PUBLISH topic) and changes one payload byte in
 * place; the frame keeps its length, so nothing else is re-encoded.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { parseTopic } from '@fleetcast/protocol/topics.js';

export interface LinkProxy {
  /** mqtt://127.0.0.1:PORT, for the group's agents. */
  readonly url: string;
  /** Drop every connection and refuse new ones (true), or let them through again (false). */
  setDown(down: boolean): void;
  /** Bytes per second each way per connection; null: unlimited. */
  setRate(bytesPerSecond: number | null): void;
  /** Corrupt bundle chunks on their way to devices. */
  setTamper(on: boolean): void;
  readonly stats: { connections: number; open: number; refused: number; tampered: number };
  close(): Promise<void>;
}

/** Remaining length (MQTT 3.1.1 2.2.3 / 5.0 2.1.4): up to 4 bytes of 7 bits; null while incomplete. */
function remainingLength(b: Buffer, at: number): { value: number; bytes: number } | null {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    if (at + i >= b.length) return null;
    const byte = b[at + i];
    value += (byte & 0x7f) * 128 ** i;
    if ((byte & 0x80) === 0) return { value, bytes: i + 1 };
  }
  return { value: -1, bytes: 4 }; // malformed: the relay passes the rest through untouched
}

/** Payload offset of a PUBLISH frame that carries a bundle chunk, or -1. */
function chunkPayloadAt(frame: Buffer, headerBytes: number, protocolLevel: number): number {
  const qos = (frame[0] >> 1) & 3;
  let p = headerBytes;
  const topicLen = frame.readUInt16BE(p);
  p += 2;
  const topic = frame.toString('utf8', p, p + topicLen);
  p += topicLen;
  if (qos > 0) p += 2;
  if (protocolLevel >= 5) {
    const props = remainingLength(frame, p);
    if (!props || props.value < 0) return -1;
    p += props.bytes + props.value;
  }
  try { return parseTopic(topic).kind === 'chunk' && p < frame.length ? p : -1; } catch { return -1; }
}

export async function startLinkProxy(brokerUrl: string): Promise<LinkProxy> {
  const target = new URL(brokerUrl);
  const port = Number(target.port || (target.protocol === 'mqtts:' ? 8883 : 1883));
  const host = target.hostname.replace(/^\[|\]$/g, '');
  let down = false;
  let rate: number | null = null;
  let tamper = false;
  const stats = { connections: 0, open: 0, refused: 0, tampered: 0 };
  const pairs = new Set<{ a: Socket; b: Socket }>();

  /** Copy src → dst, at the current rate, through `edit` (which may hold back an incomplete frame). */
  const pipe = (src: Socket, dst: Socket, edit?: (b: Buffer) => Buffer) => {
    src.on('data', (data: Buffer) => {
      const out = edit ? edit(data) : data;
      if (out.length && !dst.destroyed) dst.write(out);
      if (rate !== null && out.length) {
        // Each connection sends at most `rate` bytes per second: pause for as long as these bytes take.
        src.pause();
        setTimeout(() => { if (!src.destroyed) src.resume(); }, Math.ceil((out.length / rate) * 1000));
      }
    });
  };

  const server: Server = createServer((device) => {
    stats.connections++;
    if (down) { stats.refused++; device.destroy(); return; }
    const broker = createConnection({ host, port });
    // The relay adds no Nagle delay of its own: a network passes each small packet on (the rate still applies).
    device.setNoDelay(true);
    broker.setNoDelay(true);
    const pair = { a: device, b: broker };
    pairs.add(pair);
    stats.open++;
    const end = () => {
      if (!pairs.delete(pair)) return;
      stats.open--;
      device.destroy();
      broker.destroy();
    };
    device.on('error', end).on('close', end);
    broker.on('error', end).on('close', end);
    let level = 4;
    pipe(device, broker, (b) => {
      // The CONNECT packet names the protocol level that tells how PUBLISH frames to this device are laid out.
      if ((b[0] >> 4) === 1) { const rl = remainingLength(b, 1); if (rl && rl.value > 0) { const at = 1 + rl.bytes; level = b[at + 2 + b.readUInt16BE(at)] ?? level; } }
      return b;
    });
    let pending = Buffer.alloc(0);
    let passthrough = false;
    pipe(broker, device, (data) => {
      // Frames are tracked all the time (not only while tampering), so a tamper switched on mid-stream starts on a frame boundary.
      if (passthrough) return data;
      let buf = pending.length ? Buffer.concat([pending, data]) : data;
      let at = 0;
      while (at < buf.length) {
        const rl = remainingLength(buf, at + 1);
        if (!rl) break;
        if (rl.value < 0) { passthrough = true; at = buf.length; break; }
        const len = 1 + rl.bytes + rl.value;
        if (at + len > buf.length) break;
        if (tamper && (buf[at] >> 4) === 3) {
          const frame = buf.subarray(at, at + len);
          const p = chunkPayloadAt(frame, 1 + rl.bytes, level);
          if (p >= 0) {
            if (buf === data) buf = Buffer.from(data); // never write into a buffer the socket may still own
            buf[at + frame.length - 1] ^= 0xff;
            stats.tampered++;
          }
        }
        at += len;
      }
      pending = Buffer.from(buf.subarray(at));
      return buf.subarray(0, at);
    });
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', () => resolve()); });
  const addr = server.address() as { port: number };
  return {
    url: `mqtt://127.0.0.1:${addr.port}`,
    stats,
    setDown(d) {
      down = d;
      if (d) for (const p of [...pairs]) { p.a.destroy(); p.b.destroy(); }
    },
    setRate(r) { rate = r; },
    setTamper(on) { tamper = on; },
    async close() {
      for (const p of [...pairs]) { p.a.destroy(); p.b.destroy(); }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
