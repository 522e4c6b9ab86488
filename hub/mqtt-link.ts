/**
 * The hub's one connection to the broker, embedded or external: an ordinary
 * mqtt.js client (docs/architecture.md "MQTT"), and a dispatcher with one
 * handler per device message type (as aedes and mqtt.js route packets).
 *
 * Every message is decoded against its protocol schema before a handler sees
 * it, and the topic's device id must be the body's: a device speaks only under
 * its own topic. A bad message is counted by code and logged; it never stops
 * the messages after it.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { errorCode, isFleetcastError } from '../protocol/errors.js';
import { decodeChunkRequest, decodeDeviceEvent, decodeStateReport, type ChunkRequest, type DeviceEvent, type StateReport } from '../protocol/messages.js';
import { parseTopic, topics } from '../protocol/topics.js';
import { decodeProofRequest } from '../protocol/trust-messages.js';
import { hubError } from './errors.js';

/** What the hub does with each device message type, once it has been validated. */
export interface DeviceHandlers {
  state(msg: StateReport): void | Promise<void>;
  event(msg: DeviceEvent): void | Promise<void>;
  'chunk-req'(msg: ChunkRequest): void | Promise<void>;
  /** A device asks for a log consistency proof (issue #6). */
  'proof-req'?(msg: ReturnType<typeof decodeProofRequest>): void | Promise<void>;
  /**
   * Sampled telemetry (issue #5), handed over as bytes with the topic's device
   * id: the hot path decodes into a reusable scratch buffer instead of objects
   * (hub/telemetry/ingest.ts), so the handler makes the device-id check itself.
   */
  telemetry?(payload: Uint8Array, topicDeviceId: string): void | Promise<void>;
}
export type HandledChannel = keyof DeviceHandlers;
type DecodedChannel = Exclude<HandledChannel, 'telemetry'>;

const DECODERS: { [C in DecodedChannel]: (b: Uint8Array) => Parameters<NonNullable<DeviceHandlers[C]>>[0] } = {
  state: decodeStateReport,
  event: decodeDeviceEvent,
  'chunk-req': decodeChunkRequest,
  'proof-req': decodeProofRequest,
};
export const HANDLED_CHANNELS: HandledChannel[] = [...(Object.keys(DECODERS) as DecodedChannel[]), 'telemetry'];

export interface LinkStats {
  /** Messages handled without error, by channel. */
  handled: Record<string, number>;
  /** Messages refused, by error code (PROTO_ERR_INVALID_JSON, HUB_ERR_DEVICE_MISMATCH, …). */
  rejected: Record<string, number>;
}

export interface Dispatcher {
  dispatch(topic: string, payload: Uint8Array): Promise<void>;
  readonly stats: LinkStats;
}

export function createDispatcher(handlers: DeviceHandlers, logger: Logger): Dispatcher {
  const stats: LinkStats = { handled: {}, rejected: {} };
  const bump = (m: Record<string, number>, k: string) => { m[k] = (m[k] ?? 0) + 1; };
  return {
    stats,
    async dispatch(topic, payload) {
      try {
        const t = parseTopic(topic);
        if (t.kind !== 'device' || !(HANDLED_CHANNELS as string[]).includes(t.channel)) throw hubError('HUB_ERR_BAD_MESSAGE', `the hub does not handle messages on ${topic}`);
        // A retained message is cleared by publishing an empty one [MQTT-3.3.1-10]; nothing to handle.
        if (payload.byteLength === 0) return;
        if (t.channel === 'telemetry') {
          if (!handlers.telemetry) throw hubError('HUB_ERR_BAD_MESSAGE', 'this hub does not handle telemetry messages');
          await handlers.telemetry(payload, t.deviceId);
          bump(stats.handled, 'telemetry');
          return;
        }
        const channel = t.channel as DecodedChannel;
        const msg = DECODERS[channel](payload);
        if (msg.deviceId !== t.deviceId) {
          throw hubError('HUB_ERR_DEVICE_MISMATCH', `topic names ${JSON.stringify(t.deviceId)}, body names ${JSON.stringify(msg.deviceId)}`);
        }
        const handler = handlers[channel] as ((m: typeof msg) => void | Promise<void>) | undefined;
        if (!handler) throw hubError('HUB_ERR_BAD_MESSAGE', `this hub does not handle ${channel} messages`);
        await handler(msg);
        bump(stats.handled, channel);
      } catch (e) {
        const code = errorCode(e);
        bump(stats.rejected, code);
        if (isFleetcastError(e)) logger.warn({ code, topic: topic.slice(0, 200) }, e.message);
        else logger.error({ code, topic: topic.slice(0, 200), err: e }, 'a device message handler failed');
      }
    },
  };
}

export interface MqttLink {
  readonly url: string;
  readonly client: MqttClient;
  readonly stats: LinkStats;
  /** Resolves once the broker has acknowledged (PUBACK for QoS 1). */
  publish(topic: string, payload: Buffer, opts: { qos: 0 | 1; retain?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export interface LinkOptions {
  url: string;
  clientId: string;
  connectTimeoutMs: number;
  handlers: DeviceHandlers;
  logger: Logger;
  /** The hub's broker credential and, for mqtts://, the CA to trust (issue #6). */
  username?: string;
  password?: string;
  ca?: Buffer;
  /** Bytes of device messages waiting to be handled beyond which telemetry is shed (default 64 MiB). */
  maxQueuedBytes?: number;
}

export const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;

/**
 * The hub's inbound FIFO: messages are handled one at a time in arrival order.
 * It is bounded: when more than maxBytes are waiting (the hub cannot keep up),
 * or one device has more than maxBytes/16 of telemetry waiting, telemetry reports are shed, counted under HUB_ERR_OVERLOADED in the link's
 * rejected stats and logged once per burst, so the hub's memory stays bounded;
 * state reports, events and chunk requests are always queued (they are small,
 * and losing them would stall rollouts).
 */
export class InboundQueue {
  readonly #items: { topic: string; payload: Uint8Array; device: string | null }[] = [];
  /** Telemetry bytes queued per device topic prefix. */
  readonly #perDevice = new Map<string, number>();
  #head = 0;
  #bytes = 0;
  #running: Promise<void> | null = null;
  #warnedAt = 0;
  constructor(private readonly dispatcher: Dispatcher, private readonly maxBytes: number, private readonly logger: Logger) {}

  get bytes(): number { return this.#bytes; }

  push(topic: string, payload: Uint8Array): void {
    const len = payload.byteLength;
    let device: string | null = null;
    if (topic.endsWith('/telemetry')) {
      // Fair shedding: one device may hold at most 1/16 of the bound, so a device that floods (a bug, a replay
      // of its whole buffer) loses its own reports, not everyone's.
      device = topic.slice(0, -'/telemetry'.length);
      const mine = this.#perDevice.get(device) ?? 0;
      // A device with nothing waiting is always let in (its share may be smaller than one legal report).
      if (this.#bytes + len > this.maxBytes || (mine > 0 && mine + len > this.maxBytes / 16)) {
        const r = this.dispatcher.stats.rejected;
        r.HUB_ERR_OVERLOADED = (r.HUB_ERR_OVERLOADED ?? 0) + 1;
        // One warning per 10 s at most: a flooding device sheds on every socket read.
        const now = Date.now();
        if (now - this.#warnedAt > 10_000) {
          this.#warnedAt = now;
          this.logger.warn({ code: 'HUB_ERR_OVERLOADED', queuedBytes: this.#bytes, device: device.slice(device.lastIndexOf('/') + 1), shed: r.HUB_ERR_OVERLOADED }, 'inbound queue full (for all devices, or for this one): shedding telemetry reports until it drains');
        }
        return;
      }
      this.#perDevice.set(device, mine + len);
    }
    this.#items.push({ topic, payload, device });
    this.#bytes += len;
    this.#running ??= this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#head < this.#items.length) {
        const m = this.#items[this.#head];
        this.#items[this.#head++] = undefined as never;
        // Compact now and then, so the array does not grow for ever.
        if (this.#head > 1024 && this.#head * 2 > this.#items.length) { this.#items.splice(0, this.#head); this.#head = 0; }
        // dispatch() counts and logs what it refuses; anything else thrown must not stop the queue.
        try { await this.dispatcher.dispatch(m.topic, m.payload); } catch (e) { this.logger.error({ err: e }, 'device message dispatch failed'); } finally { this.#release(m); }
      }
    } finally {
      this.#running = null;
    }
  }

  #release(m: { payload: Uint8Array; device: string | null }): void {
    this.#bytes -= m.payload.byteLength;
    if (m.device === null) return;
    const left = (this.#perDevice.get(m.device) ?? 0) - m.payload.byteLength;
    if (left > 0) this.#perDevice.set(m.device, left); else this.#perDevice.delete(m.device);
  }

  /** Resolves once everything queued so far has been handled. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }
}

/** Connect, subscribe to every handled device channel, and dispatch. Throws HUB_ERR_BROKER_UNREACHABLE. */
export async function connectLink(opts: LinkOptions): Promise<MqttLink> {
  const { logger } = opts;
  const dispatcher = createDispatcher(opts.handlers, logger);
  // A persistent session (clean: false) keeps device events queued at the broker while the hub restarts.
  const client = mqtt.connect(opts.url, {
    clientId: opts.clientId,
    clean: false,
    protocolVersion: 4,
    reconnectPeriod: 1_000,
    connectTimeout: opts.connectTimeoutMs,
    ...(opts.username !== undefined ? { username: opts.username, password: opts.password } : {}),
    ...(opts.ca ? { ca: opts.ca } : {}),
  });
  // Messages are handled one after another, in arrival order (QoS 1 keeps per-publisher order).
  const queue = new InboundQueue(dispatcher, opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES, logger);
  let started = false;
  // An 'error' event with no listener would throw and end the process; always listen.
  client.on('error', (e) => { if (started) logger.warn({ code: 'HUB_ERR_BROKER_UNREACHABLE', err: e }, 'broker connection error'); });
  client.on('message', (topic, payload) => queue.push(topic, payload));
  try {
    // A broker that is still starting refuses a few attempts; mqtt.js retries until the deadline.
    await new Promise<void>((resolve, reject) => {
      let last: Error | undefined;
      const onError = (e: Error) => { last = e; };
      const timer = setTimeout(() => {
        client.off('error', onError);
        reject(last ?? new Error(`no CONNACK within ${opts.connectTimeoutMs} ms`));
      }, opts.connectTimeoutMs);
      client.on('error', onError);
      client.once('connect', () => { clearTimeout(timer); client.off('error', onError); resolve(); });
    });
    await client.subscribeAsync(Object.fromEntries(HANDLED_CHANNELS.map((c) => [topics.allDevices(c), { qos: 1 as const }])));
  } catch (e) {
    client.end(true);
    const err = hubError('HUB_ERR_BROKER_UNREACHABLE', `${opts.url}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    err.cause = e;
    throw err;
  }
  // After start-up, connection trouble is logged and mqtt.js reconnects on its own.
  started = true;
  client.on('offline', () => logger.warn({ code: 'HUB_ERR_BROKER_UNREACHABLE' }, 'broker offline; reconnecting'));
  client.on('connect', () => logger.info({ url: opts.url }, 'connected to broker'));
  logger.info({ url: opts.url }, 'connected to broker');
  let closing: Promise<void> | undefined;
  return {
    url: opts.url,
    client,
    stats: dispatcher.stats,
    async publish(topic, payload, o) {
      await client.publishAsync(topic, payload, { qos: o.qos, retain: o.retain ?? false });
    },
    close() {
      closing ??= (async () => {
        await client.endAsync();
        await queue.idle();
      })();
      return closing;
    },
  };
}
