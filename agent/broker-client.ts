/**
 * The broker client seam: the few MQTT operations the agent uses, all QoS 1.
 * The real one wraps mqtt.js; one message handler per client feeds the
 * agent's dispatcher (one handler per message type, as aedes/mqtt.js do).
 *
 * Reconnection is the agent's, not mqtt.js's: mqtt.js retries at a fixed
 * period, and after a refused CONNACK (bad user name or password) it stops for
 * good. Here every failed or lost connection is followed by another attempt
 * after a capped, jittered, growing wait (reconnect-backoff.ts); a refused
 * login on a slower schedule. Each failure is classified with a code and kept
 * for the status page, and the caller hears of a failure only when it differs
 * from the previous one (not one log line per attempt).
 */
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { agentError } from './errors.js';
import { framedTcpStream, framedTlsStream } from './framed-stream.js';
import type { PayloadMatcher } from './payload-matcher.js';
import { backoffDelay, type BackoffSchedule, type FailureKind } from './reconnect-backoff.js';

export interface BrokerFailure {
  code: 'AGENT_ERR_BROKER_AUTH' | 'AGENT_ERR_BROKER_UNREACHABLE';
  detail: string;
  /** When the latest failure happened, and how many in a row since the last good connection. */
  at: number;
  attempts: number;
  /** When the next attempt is due (null once the client was ended). */
  nextAttemptAt: number | null;
}

export interface BrokerClient {
  readonly connected: boolean;
  /** Why the broker cannot be reached right now; null while connected or before the first failure. */
  readonly failure?: BrokerFailure | null;
  /** QoS 1; resolves on SUBACK, rejects if the broker refused the filter. */
  subscribe(filter: string): Promise<void>;
  unsubscribe(filter: string): Promise<void>;
  /** QoS 1; resolves on PUBACK. */
  publish(topic: string, payload: Buffer, opts?: { retain?: boolean }): Promise<void>;
  onMessage(handler: (topic: string, payload: Buffer) => void): void;
  /** Called on every (re)connection, after the CONNACK. */
  onConnect(handler: () => void): void;
  onDisconnect(handler: () => void): void;
  end(): Promise<void>;
}

export interface MqttClientOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** A file holding the password, read again before every attempt (a re-enrolled device picks up its new secret without a restart). */
  passwordFile?: string;
  /** PEM CA for mqtts:// (issue #6); read once at connect. */
  caPath?: string;
  /** First wait after a lost or failed connection, doubled per failure up to reconnectMaxMs (default 60 s). */
  reconnectPeriodMs: number;
  reconnectMaxMs?: number;
  /** The schedule after a refused login (default 30 s doubling to 15 min). */
  loginRetry?: BackoffSchedule;
  connectTimeoutMs: number;
  /** MQTT keepalive in seconds (default mqtt.js's 60). */
  keepaliveSec?: number;
  /** A failure that differs (code or detail) from the previous one since the last good connection. */
  onFailure?: (f: BrokerFailure) => void;
  now?: () => number;
  random?: () => number;
  /** The simulator's shared payloads, compared in place of copied over plain TCP (payload-matcher.ts); a device has none. */
  payloadMatcher?: PayloadMatcher;
}

// CONNACK return codes that mean "this credential is not accepted": MQTT 3.1.1 4 and 5 [MQTT-3.2.2.3], MQTT 5 0x86 and 0x87.
const AUTH_CODES = new Set([4, 5, 134, 135]);

export function connectMqtt(o: MqttClientOptions): BrokerClient {
  const now = o.now ?? Date.now;
  const reconnect: BackoffSchedule = { firstMs: o.reconnectPeriodMs, maxMs: Math.max(o.reconnectPeriodMs, o.reconnectMaxMs ?? 60_000) };
  const loginRetry: BackoffSchedule = o.loginRetry ?? { firstMs: 30_000, maxMs: 900_000 };
  // Plain TCP and TLS go through the agent's framer (framed-stream.ts); websockets keep mqtt.js's stream.
  const tlsUrl = /^(mqtts|ssl|tls):\/\//.test(o.url);
  // mqtt.js sends its TCP and TLS connections through the SOCKS proxy MQTTJS_SOCKS_PROXY names (it reads the
  // variable itself, mqtt.connect); the framed streams would connect directly, past the proxy. A device behind
  // one keeps mqtt.js's stream, without the framer's packet bound.
  const socksProxy = !!process.env.MQTTJS_SOCKS_PROXY;
  const framed = !socksProxy && (tlsUrl || /^(mqtt|tcp):\/\//.test(o.url));
  const ca = o.caPath !== undefined ? readCa(o.caPath) : undefined;
  const client = mqtt.connect(o.url, {
    // Over TCP and TLS the agent gives mqtt.js whole packets (framed-stream.ts); it connects once that stream is set.
    manualConnect: framed,
    clientId: o.clientId,
    // Clean session: the retained assign message is re-delivered on every subscribe,
    // which is how an interrupted install resumes ([MQTT-3.3.1-6]).
    clean: true,
    // Replaced before each wait by the backoff below; mqtt.js reads it when it arms its reconnect timer.
    reconnectPeriod: reconnect.firstMs,
    // Without it mqtt.js never tries again after a refused login.
    reconnectOnConnackError: true,
    connectTimeout: o.connectTimeoutMs,
    ...(o.keepaliveSec !== undefined ? { keepalive: o.keepaliveSec } : {}),
    // Subscriptions are renewed by the agent itself after each CONNACK (it must
    // know when the SUBACK arrives before asking for chunks).
    resubscribe: false,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.passwordFile !== undefined ? { password: readPassword(o.passwordFile) } : o.password !== undefined ? { password: o.password } : {}),
    ...(ca !== undefined ? { ca } : {}),
  });
  if (framed) {
    const { hostname, host, port } = client.options as { hostname?: string; host?: string; port?: number };
    // mqtt.js calls its stream builder at every (re)connection; it declares it private but reads it from the instance.
    const at = hostname ?? host ?? 'localhost';
    (client as unknown as { streamBuilder: () => unknown }).streamBuilder = tlsUrl
      ? () => framedTlsStream(at, port ?? 8883, ca)
      : () => framedTcpStream(at, port ?? 1883, o.payloadMatcher);
    client.connect();
  }
  let failure: BrokerFailure | null = null;
  let failures = 0;
  let reported: string | null = null;
  // What went wrong in the attempt in progress (set by 'error', used when it closes).
  let cause: { kind: FailureKind; detail: string } | null = null;
  let counted = false;
  let ended = false;

  const fail = (kind: FailureKind, detail: string) => {
    if (counted || ended) return;
    counted = true;
    failures++;
    const wait = backoffDelay(failures, kind === 'auth' ? loginRetry : reconnect, o.random);
    // mqtt.js arms its timer with this value right after this event ([close] or the refused CONNACK).
    client.options.reconnectPeriod = wait;
    const at = now();
    failure = { code: kind === 'auth' ? 'AGENT_ERR_BROKER_AUTH' : 'AGENT_ERR_BROKER_UNREACHABLE', detail, at, attempts: failures, nextAttemptAt: at + wait };
    const key = `${failure.code} ${detail}`;
    if (key !== reported) { reported = key; o.onFailure?.(failure); }
  };

  // An 'error' event without a listener would throw and kill the process.
  client.on('error', (e: Error & { code?: unknown }) => {
    if (typeof e.code === 'number') {
      // A CONNACK refusal: mqtt.js arms its reconnect timer as soon as this listener returns.
      const kind: FailureKind = AUTH_CODES.has(e.code) ? 'auth' : 'network';
      fail(kind, `${e.message} (CONNACK ${e.code})`);
    } else {
      cause = { kind: 'network', detail: typeof e.code === 'string' ? `${e.code}: ${e.message}` : e.message };
      // No code: mqtt.js's parser or its packet handlers refused what the broker sent (a malformed packet, a
      // protocol error). [MQTT-4.13]: close the connection. mqtt.js only emits the error and parses on from its
      // next chunk (mid-packet on a websocket stream), the refused packet lost; a new connection resumes the
      // install as after any drop (retained assignment, chunks asked again). A stream error (string code)
      // already closes the stream.
      const stream = client.stream as { destroyed?: boolean; destroy?: () => void } | undefined;
      if (e.code === undefined && !ended && stream && !stream.destroyed) stream.destroy?.();
    }
  });
  // Before mqtt.js's own 'close' listener, which arms the reconnect timer with options.reconnectPeriod.
  client.prependListener('close', () => {
    fail(cause?.kind ?? 'network', cause?.detail ?? (client.connected ? 'connection lost' : 'connection closed before the broker answered'));
  });
  client.on('reconnect', () => {
    counted = false;
    cause = null;
    // A re-enrolled device: its new secret is read for this attempt.
    if (o.passwordFile !== undefined) client.options.password = readPasswordOr(o.passwordFile, client.options.password);
  });
  keepAliveWhileReceiving(client);
  // No Nagle delay on the device's side either: its subscribe, chunk request and reports are small
  // packets that each wait for an answer, and one written behind an unacknowledged one waited for the
  // broker's delayed ACK (~40 ms). mqtt.js leaves the default (Nagle on); a new socket per connection.
  client.on('connect', () => { (client.stream as { setNoDelay?: (on: boolean) => unknown }).setNoDelay?.(true); });
  client.on('connect', () => {
    failures = 0;
    failure = null;
    reported = null;
    counted = false;
    // mqtt.js handles a CONNACK after the packets parsed with it: a refused packet in the same read has already
    // closed this connection, and its cause is what the close reports.
    if (!(client.stream as { destroyed?: boolean } | undefined)?.destroyed) cause = null;
  });
  return {
    get connected() { return client.connected; },
    get failure() { return failure; },
    async subscribe(filter) {
      const granted = await client.subscribeAsync(filter, { qos: 1 });
      // 0x80 in a SUBACK means the broker refused the subscription ([MQTT-3.9.3]).
      if (granted.some((g) => g.qos === 128)) throw new Error(`broker refused subscription to ${filter}`);
    },
    async unsubscribe(filter) { await client.unsubscribeAsync(filter); },
    async publish(topic, payload, opts = {}) { await client.publishAsync(topic, payload, { qos: 1, retain: opts.retain === true }); },
    onMessage(handler) { client.on('message', (topic, payload) => handler(topic, payload)); },
    onConnect(handler) { client.on('connect', () => handler()); },
    onDisconnect(handler) { client.on('close', () => handler()); },
    async end() {
      ended = true;
      if (failure) failure = { ...failure, nextAttemptAt: null };
      await client.endAsync(true);
    },
  };
}

/**
 * Any byte from the broker shows it is alive. mqtt.js judges only by acks and PINGRESP: a client
 * receiving a long transfer (a large bundle, a slow link, a broker writing to thousands) pinged,
 * its PINGRESP queued behind the chunks still on their way, and 1.5 keepalives later it dropped a
 * working connection (and a device started its fetch round again). Here a keepalive timeout with
 * bytes received within the last keepalive pings again instead: the broker keeps hearing from the
 * client (PUBACKs, pings) and the client waits for as long as data keeps coming.
 */
export function keepAliveWhileReceiving(client: mqtt.MqttClient): void {
  let lastByteAt = -Infinity;
  // A new stream per connection; 'connect' comes once per stream.
  client.on('connect', () => { client.stream.on('data', () => { lastByteAt = performance.now(); }); });
  const timedOut = client.onKeepaliveTimeout.bind(client);
  client.onKeepaliveTimeout = () => {
    // Over TCP and TLS the stream hands on whole packets only; its last socket read counts too (framed-stream.ts).
    const lastReadAt = Math.max(lastByteAt, (client.stream as { lastReadAt?: number }).lastReadAt ?? -Infinity);
    if (performance.now() - lastReadAt >= client.options.keepalive! * 1000) { timedOut(); return; }
    client.reschedulePing(true);
    client.sendPing();
  };
}

function readCa(path: string): Buffer {
  try { return readFileSync(path); } catch (e) {
    throw agentError('AGENT_ERR_CONFIG', `mqttCaPath ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function readPassword(path: string): string {
  try { return readFileSync(path, 'utf8').trim(); } catch (e) {
    throw agentError('AGENT_ERR_CONFIG', `mqttPasswordFile ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** At a reconnect the file may be mid-rewrite or briefly gone: keep the previous secret then. */
function readPasswordOr(path: string, previous: string | Buffer | undefined): string | Buffer | undefined {
  try { return readFileSync(path, 'utf8').trim(); } catch { return previous; }
}
