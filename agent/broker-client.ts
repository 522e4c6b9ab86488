/**
 * The broker client seam: the few MQTT operations the agent uses, all QoS 1.
 * The real one wraps mqtt.js; one message handler per client feeds the
 * agent's dispatcher (one handler per message type, as aedes/mqtt.js do).
 */
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { agentError } from './errors.js';

export interface BrokerClient {
  readonly connected: boolean;
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
  /** PEM CA for mqtts:// (issue #6); read once at connect. */
  caPath?: string;
  reconnectPeriodMs: number;
  connectTimeoutMs: number;
  onError?: (e: Error) => void;
}

export function connectMqtt(o: MqttClientOptions): BrokerClient {
  const client = mqtt.connect(o.url, {
    clientId: o.clientId,
    // Clean session: the retained assign message is re-delivered on every subscribe,
    // which is how an interrupted install resumes ([MQTT-3.3.1-6]).
    clean: true,
    reconnectPeriod: o.reconnectPeriodMs,
    connectTimeout: o.connectTimeoutMs,
    // Subscriptions are renewed by the agent itself after each CONNACK (it must
    // know when the SUBACK arrives before asking for chunks).
    resubscribe: false,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...(o.caPath !== undefined ? { ca: readCa(o.caPath) } : {}),
  });
  // An 'error' event without a listener would throw and kill the process.
  client.on('error', (e) => o.onError?.(e));
  return {
    get connected() { return client.connected; },
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
    async end() { await client.endAsync(true); },
  };
}

function readCa(path: string): Buffer {
  try { return readFileSync(path); } catch (e) {
    throw agentError('AGENT_ERR_CONFIG', `mqttCaPath ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
