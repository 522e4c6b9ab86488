/**
 * Thousands of lightweight emulated devices for reconnect-storm runs: raw MQTT
 * 3.1.1 over node:net (a few kB each, where an mqtt.js client costs tens), with
 * the device's real credential, client id = user name = device id. Each one
 * does what an agent does on every (re)connect: SUBSCRIBE to its assign topic
 * (QoS 1) and PUBLISH a retained state report (QoS 1, seq one higher each
 * time), and on losing the connection it retries after a capped exponential
 * backoff with full jitter (delay uniform in [0, min(cap, base·2^attempt)]), so
 * a restart does not bring the whole fleet back in one synchronised wave.
 * Shared by test/integration/reconnect-storm.test.ts and bench reconnect-storm.
 */
import { connect, type Socket } from 'node:net';
import { encode } from '@fleetcast/protocol/messages.js';
import { topics } from '@fleetcast/protocol/topics.js';

/** `fixed`: every device waits exactly base·2^attempt (capped), as clients without jitter do: the synchronised waves a restart used to cause. */
export interface StormBackoff { baseMs: number; capMs: number; fixed?: boolean }
export interface StormDeviceSpec { id: string; password: string }

function varint(n: number): Buffer {
  const out: number[] = [];
  do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 0x80; out.push(b); } while (n > 0);
  return Buffer.from(out);
}
function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}
function packet(first: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([first]), varint(body.length), body]);
}
function u16(n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; }

// [MQTT-3.1.2-1..] protocol "MQTT" level 4; flags: user name, password, clean session; keep alive 0 (none).
const connectPacket = (d: StormDeviceSpec) => packet(0x10, str('MQTT'), Buffer.from([4, 0xc2]), u16(0), str(d.id), str(d.id), str(d.password));
// [MQTT-3.8.1-1] SUBSCRIBE has flags 0010; one filter, QoS 1.
const subscribePacket = (id: number, topic: string) => packet(0x82, u16(id), str(topic), Buffer.from([1]));
// PUBLISH, QoS 1 (0x02), retain (0x01).
const publishPacket = (id: number, topic: string, payload: Buffer) => packet(0x33, str(topic), u16(id), payload);
const pubackPacket = (id: number) => Buffer.from([0x40, 2, id >> 8, id & 0xff]);

/** mqtt.js's default connectTimeout, which the agent's client keeps. */
export const CONNACK_TIMEOUT_MS = 30_000;

export class StormDevice {
  connected = false;
  subscribed = false;
  /** The seq of the last state report the broker acknowledged. */
  ackedSeq = 0;
  seq = 0;
  /** Number of assign messages received (retained, on every subscription) and when the last came. */
  assigns = 0;
  lastAssignAt = 0;
  connects = 0;
  refusals = 0;
  /** Chunk messages received (fc/v1/bundle/…/chunk/…), and QoS 1 publishes of send() the broker acknowledged. */
  chunks = 0;
  sentAcked = 0;
  private sock: Socket | undefined;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private buf: Buffer = Buffer.alloc(0);
  private reportId = 0;
  private sendId = 30000;

  constructor(readonly spec: StormDeviceSpec, private readonly port: number, private readonly host: string, private readonly backoff: StormBackoff, private readonly report: (d: StormDevice) => Buffer) {}

  start(): void {
    if (this.stopped) return;
    const s = connect(this.port, this.host);
    this.sock = s;
    s.setNoDelay(true);
    s.on('connect', () => s.write(connectPacket(this.spec)));
    // As mqtt.js's connectTimeout: a connection the broker never answers (accepted by the kernel in a
    // full backlog, then dropped) is given up and retried, not waited on forever.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { if (this.sock === s && !this.connected) s.destroy(); }, CONNACK_TIMEOUT_MS);
    s.on('data', (chunk: Buffer) => { this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk; this.parse(); });
    s.on('error', () => {});
    s.on('close', () => this.lost(s));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.sock?.destroy();
  }

  /** A new state report (seq one higher), retained at QoS 1, as an agent sends on connect and every heartbeat. */
  reportState(): void {
    this.seq++;
    this.reportId = this.reportId % 30000 + 2;
    this.sock?.write(publishPacket(this.reportId, topics.device(this.spec.id, 'state'), this.report(this)));
  }

  /** PUBLISH at QoS 1, not retained, as an agent sends events, telemetry and chunk requests (bench hub-capacity). */
  send(topic: string, payload: Buffer): void {
    this.sendId = this.sendId % 30000 + 30001;
    this.sock?.write(packet(0x32, str(topic), u16(this.sendId), payload));
  }

  /** SUBSCRIBE at QoS 1 to one more filter (a bundle's chunk topics); its SUBACK counts as the assign one's. */
  subscribe(topic: string): void {
    this.sock?.write(subscribePacket(2, topic));
  }

  /** PUBLISH at QoS 0 (tests: a message the broker should route or refuse). */
  publish(topic: string, payload: Buffer): void {
    this.sock?.write(packet(0x30, str(topic), payload));
  }

  private lost(s: Socket): void {
    if (this.sock !== s) return;
    this.sock = undefined;
    this.connected = false;
    this.subscribed = false;
    this.buf = Buffer.alloc(0);
    if (this.stopped) return;
    const ceiling = Math.min(this.backoff.capMs, this.backoff.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    this.timer = setTimeout(() => this.start(), this.backoff.fixed ? ceiling : Math.random() * ceiling);
  }

  private parse(): void {
    for (;;) {
      if (this.buf.length < 2) return;
      let len = 0, mul = 1, i = 1;
      for (;;) {
        if (i >= this.buf.length) return;
        const b = this.buf[i++];
        len += (b & 0x7f) * mul;
        mul *= 128;
        if (!(b & 0x80)) break;
      }
      if (this.buf.length < i + len) return;
      const first = this.buf[0];
      const body = this.buf.subarray(i, i + len);
      this.buf = this.buf.subarray(i + len);
      this.handle(first, body);
    }
  }

  private handle(first: number, body: Buffer): void {
    const s = this.sock;
    if (!s) return;
    switch (first >> 4) {
      case 2: { // CONNACK
        if (body[1] !== 0) { this.refusals++; s.destroy(); return; }
        this.connected = true;
        clearTimeout(this.timer);
        this.connects++;
        this.attempt = 0;
        s.write(subscribePacket(1, topics.assign(this.spec.id)));
        this.reportState();
        return;
      }
      case 9: // SUBACK: 0x80 is a refusal [MQTT-3.9.3-2]
        if (body[2] === 0x80) { this.refusals++; s.destroy(); return; }
        this.subscribed = true;
        return;
      case 4: { // PUBACK of the state report, or of a send()
        const id = body.readUInt16BE(0);
        if (id === this.reportId) this.ackedSeq = this.seq;
        else if (id > 30000) this.sentAcked++;
        return;
      }
      case 3: { // PUBLISH (the assignment, or a chunk)
        const qos = (first >> 1) & 3;
        const topicLen = body.readUInt16BE(0);
        // Topic bytes are ASCII here: fc/v1/dev/<id>/assign or fc/v1/bundle/<id>/chunk/<i>.
        if (body.toString('latin1', 2, 2 + topicLen).includes('/chunk/')) this.chunks++;
        else { this.assigns++; this.lastAssignAt = Date.now(); }
        if (qos > 0) s.write(pubackPacket(body.readUInt16BE(2 + topicLen)));
        return;
      }
      default:
    }
  }
}

/** A minimal valid state report (protocol/messages.ts stateReportSchema) with the device's current seq. */
export function stateReportFor(d: StormDevice): Buffer {
  return encode({
    v: 1, deviceId: d.spec.id, seq: d.seq, at: Date.now(), agentVersion: 'storm-0', runtime: 'onnxruntime-node',
    active: null, previous: null, phase: 'idle', target: null, progress: null, lastError: null, counter: 0, capabilities: {},
  });
}

export class StormFleet {
  readonly devices: StormDevice[];
  constructor(specs: StormDeviceSpec[], url: string, backoff: StormBackoff) {
    const u = new URL(url);
    this.devices = specs.map((s) => new StormDevice(s, Number(u.port), u.hostname, backoff, stateReportFor));
  }
  /** Every device starts its first connection at once (the storm). */
  start(): void { for (const d of this.devices) d.start(); }
  stop(): void { for (const d of this.devices) d.stop(); }
  count(pred: (d: StormDevice) => boolean): number { let n = 0; for (const d of this.devices) if (pred(d)) n++; return n; }
}
