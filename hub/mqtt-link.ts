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
import { errorCode, isFleetcastError } from '@fleetcast/protocol/errors.js';
import { decodeChunkRequest, decodeDeviceEvent, decodeStateReport, type ChunkRequest, type DeviceEvent, type StateReport } from '@fleetcast/protocol/messages.js';
import { DEVICE_CHANNEL_LIMITS } from '@fleetcast/protocol/channel-limits.js';
import { parseTopic, topics, type DeviceChannel } from '@fleetcast/protocol/topics.js';
import { decodeProofRequest } from '@fleetcast/protocol/trust-messages.js';
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
        if (holdsNul(msg)) throw hubError('HUB_ERR_BAD_MESSAGE', `a ${channel} message holds a NUL character (U+0000) in a string, which the store cannot keep; send the text without it`);
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

/**
 * Whether a decoded message holds U+0000 in any string. PostgreSQL refuses it in text and in jsonb (a stored
 * report holding it made every registry query that reads reports as JSON fail, for the whole fleet); SQLite
 * takes it. Refused on both engines, so a device's message is handled the same wherever its hub stores it.
 */
function holdsNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (Array.isArray(v)) return v.some(holdsNul);
  if (v !== null && typeof v === 'object') return Object.entries(v).some(([k, x]) => k.includes('\u0000') || holdsNul(x));
  return false;
}

export interface MqttLink {
  readonly url: string;
  readonly client: MqttClient;
  readonly stats: LinkStats;
  /** The inbound queue's size now and at its peak, in payload bytes. */
  readonly queue: Pick<InboundQueue, 'bytes' | 'peakBytes'>;
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
  /** Bytes of device messages waiting to be handled beyond which telemetry is shed (default 64 MiB); a device's share is 1/16 of it. */
  maxQueuedBytes?: number;
  /**
   * Several hubs, one fleet (DESIGN.md "Scale-out"): consume the device channels through this MQTT 5 shared
   * subscription group (`$share/<group>/fc/v1/dev/+/<channel>`), so the broker hands each device message to one
   * hub of the group. Unset: one hub, plain subscriptions (MQTT 3.1.1, persistent session).
   */
  shareGroup?: string;
}

/** The filter for one device channel: shared among the hubs of a group [MQTT-4.8.2], or plain. */
export function deviceFilter(channel: HandledChannel, shareGroup?: string): string {
  return shareGroup === undefined ? topics.allDevices(channel) : `$share/${shareGroup}/${topics.allDevices(channel)}`;
}

export const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;

/** Messages one device may have waiting, whatever their size: a flood of tiny chunk requests is bounded too. */
export const MAX_PENDING_PER_DEVICE = 1024;

const EMPTY = new Uint8Array(0);

interface Queued { topic: string; payload: Uint8Array; device: string | null; dead: boolean }

/**
 * The hub's inbound FIFO: messages are handled one at a time in arrival order.
 * It is bounded on every device channel, so that no device can grow the hub's
 * memory or hold the queue for the others:
 *
 * - a payload over its channel's limit (protocol/channel-limits.ts) is refused
 *   on arrival, before it is queued (an external broker may not enforce it);
 * - state reports are coalesced: a device has at most one waiting, and a newer
 *   one replaces it (moving to the back, so the device's own order holds). The
 *   registry keeps only the latest state and its counter only grows, so the
 *   latest report carries everything an earlier one would have told; dropping
 *   state instead could leave a device's last phase unknown and stall a rollout;
 * - every other channel (event, chunk-req, proof-req, telemetry) is shed, per
 *   device, past 1/16 of the byte bound or MAX_PENDING_PER_DEVICE messages, so a
 *   device that floods loses its own messages, not everyone's, and another
 *   device's message waits behind at most that share of the flooder's;
 * - telemetry is also shed when the whole queue is over the bound (the hub
 *   cannot keep up), and everything but state past twice the bound.
 *
 * Shed messages are counted under HUB_ERR_OVERLOADED in the link's rejected
 * stats and logged once per burst. A device whose chunk request or proof
 * request was shed asks again (agent/fetcher.ts, agent/trust.ts).
 */
export class InboundQueue {
  #items: Queued[] = [];
  /** Bytes and messages waiting per device (state excluded: one at most each). */
  readonly #perDevice = new Map<string, { bytes: number; count: number }>();
  /** The state report waiting per device, to be replaced by a newer one. */
  readonly #state = new Map<string, Queued>();
  #head = 0;
  /** Superseded state reports still in #items (their payloads already let go). */
  #dead = 0;
  #bytes = 0;
  #peak = 0;
  #running: Promise<void> | null = null;
  #warnedAt = 0;
  /**
   * `onOversize` hears of each message refused for its size, to clear what a
   * broker that cannot refuse it (mosquitto has no per-topic limit) may hold retained.
   */
  constructor(private readonly dispatcher: Dispatcher, private readonly maxBytes: number, private readonly logger: Logger, private readonly onOversize?: (topic: string) => void) {}

  get bytes(): number { return this.#bytes; }
  /** Entries held, superseded state reports not yet swept out included. */
  get entries(): number { return this.#items.length - this.#head; }
  /** The most bytes ever waiting at once. */
  get peakBytes(): number { return this.#peak; }

  push(topic: string, payload: Uint8Array): void {
    const len = payload.byteLength;
    const cut = topic.lastIndexOf('/');
    // The device's topic prefix (fc/v1/dev/<id>) keys its share; the dispatcher validates the topic itself.
    const device = topic.slice(0, cut);
    const channel = topic.slice(cut + 1) as DeviceChannel;
    const limit = Object.hasOwn(DEVICE_CHANNEL_LIMITS, channel) ? DEVICE_CHANNEL_LIMITS[channel] : undefined;
    if (limit && len > limit.maxBytes) {
      this.#refuse('PROTO_ERR_MESSAGE_TOO_LARGE', device, `a ${channel} message of ${len} bytes is over its limit of ${limit.maxBytes}: refused before queueing`);
      this.onOversize?.(topic);
      return;
    }
    if (channel === 'state') {
      const waiting = this.#state.get(device);
      if (waiting) {
        waiting.dead = true;
        this.#bytes -= waiting.payload.byteLength;
        waiting.payload = EMPTY;
        // A device replacing its state faster than the hub drains would leave a trail of dead entries: sweep them out.
        if (++this.#dead > 1024 && this.#dead * 2 > this.#items.length - this.#head) {
          this.#items = this.#items.slice(this.#head).filter((x) => !x.dead);
          this.#head = 0;
          this.#dead = 0;
        }
      }
      const m: Queued = { topic, payload, device: null, dead: false };
      this.#state.set(device, m);
      this.#enqueue(m);
      return;
    }
    const mine = this.#perDevice.get(device) ?? { bytes: 0, count: 0 };
    // A device with nothing waiting is always let in (its share may be smaller than one legal report), unless the hub is far behind.
    const overDevice = mine.count > 0 && (mine.bytes + len > this.maxBytes / 16 || mine.count >= MAX_PENDING_PER_DEVICE);
    const overAll = this.#bytes + len > (channel === 'telemetry' ? this.maxBytes : 2 * this.maxBytes);
    if (overDevice || overAll) { this.#refuse('HUB_ERR_OVERLOADED', device, `inbound queue full (for all devices, or for this one): shedding ${channel} messages until it drains`); return; }
    mine.bytes += len;
    mine.count++;
    this.#perDevice.set(device, mine);
    this.#enqueue({ topic, payload, device, dead: false });
  }

  #enqueue(m: Queued): void {
    this.#items.push(m);
    this.#bytes += m.payload.byteLength;
    if (this.#bytes > this.#peak) this.#peak = this.#bytes;
    this.#running ??= this.#drain();
  }

  #refuse(code: string, device: string, what: string): void {
    const r = this.dispatcher.stats.rejected;
    r[code] = (r[code] ?? 0) + 1;
    // One warning per 10 s at most: a flooding device is refused on every socket read.
    const now = Date.now();
    if (now - this.#warnedAt > 10_000) {
      this.#warnedAt = now;
      this.logger.warn({ code, queuedBytes: this.#bytes, device: device.slice(device.lastIndexOf('/') + 1), refused: r[code] }, what);
    }
  }

  async #drain(): Promise<void> {
    try {
      while (this.#head < this.#items.length) {
        const m = this.#items[this.#head];
        this.#items[this.#head++] = undefined as never;
        // Compact now and then, so the array does not grow for ever.
        if (this.#head > 1024 && this.#head * 2 > this.#items.length) { this.#items.splice(0, this.#head); this.#head = 0; }
        // A state report superseded by a newer one of the same device (its bytes were released then).
        if (m.dead) { this.#dead--; continue; }
        if (m.device === null) { const key = m.topic.slice(0, m.topic.lastIndexOf('/')); if (this.#state.get(key) === m) this.#state.delete(key); }
        // dispatch() counts and logs what it refuses; anything else thrown must not stop the queue.
        try { await this.dispatcher.dispatch(m.topic, m.payload); } catch (e) { this.logger.error({ err: e }, 'device message dispatch failed'); } finally { this.#release(m); }
      }
    } finally {
      this.#running = null;
    }
  }

  #release(m: Queued): void {
    this.#bytes -= m.payload.byteLength;
    if (m.device === null) return;
    const mine = this.#perDevice.get(m.device);
    if (!mine) return;
    mine.bytes -= m.payload.byteLength;
    if (--mine.count <= 0) this.#perDevice.delete(m.device);
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
  // One hub: a persistent session (clean: false) keeps device events queued at the broker while the hub restarts.
  // A hub of a group: MQTT 5 (shared subscriptions) with a session that ends with its connection (clean start,
  // no session expiry): a broker may keep choosing a disconnected member with a live session for its share of
  // the fleet's messages and queue them there, so a hub that died would swallow part of every report until its
  // session expired; with no session, the broker gives every message to a hub that is connected.
  const shared = opts.shareGroup !== undefined;
  const client = mqtt.connect(opts.url, {
    clientId: opts.clientId,
    clean: shared,
    protocolVersion: shared ? 5 : 4,
    reconnectPeriod: 1_000,
    connectTimeout: opts.connectTimeoutMs,
    ...(opts.username !== undefined ? { username: opts.username, password: opts.password } : {}),
    ...(opts.ca ? { ca: opts.ca } : {}),
  });
  // Messages are handled one after another, in arrival order (QoS 1 keeps per-publisher order).
  // An oversized device message may also sit retained in an external broker (mosquitto cannot refuse retain per
  // topic): an empty retained message clears it [MQTT-3.3.1-10], so at most one legal-sized message per topic stays.
  const clearRetained = (topic: string) => client.publish(topic, Buffer.alloc(0), { qos: 1, retain: true }, (e) => { if (e) logger.warn({ err: e, topic: topic.slice(0, 200) }, 'could not clear an oversized retained message'); });
  const queue = new InboundQueue(dispatcher, opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES, logger, clearRetained);
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
    const granted = await client.subscribeAsync(Object.fromEntries(HANDLED_CHANNELS.map((c) => [deviceFilter(c, opts.shareGroup), { qos: 1 as const }])));
    // A broker without shared subscriptions refuses the filters (0x9E); the hubs of a group would each miss everything.
    const refused = granted.filter((g) => g.qos !== 0 && g.qos !== 1 && g.qos !== 2);
    if (refused.length > 0) throw new Error(`the broker refused the subscriptions ${refused.map((g) => `${g.topic} (reason ${g.qos})`).join(', ')}${shared ? ': it must support MQTT 5 shared subscriptions' : ''}`);
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
    queue,
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
