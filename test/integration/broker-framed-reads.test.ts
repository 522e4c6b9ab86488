/**
 * The agent reads its MQTT connection as whole packets (agent/framed-stream.ts,
 * agent/mqtt-framer.ts): a message longer than one socket read arrives in one
 * buffer of the packet's size, and mqtt.js hands its payload on as a view of
 * that buffer. Before, mqtt.js read into a fresh 64 KB buffer per read and
 * copied a long payload out of them into a buffer of its own: every received
 * byte allocated twice (the garbage behind most of the simulator's collection
 * time during a fleet-wide transfer, bench sim-scale). Real broker, real client.
 */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { connectMqtt, type BrokerClient } from '../../agent/broker-client.js';
import { startBroker, type EmbeddedBroker } from '../../hub/broker.js';
import { waitFor } from '../helpers/env.js';

let broker: EmbeddedBroker | null = null;
let agent: BrokerClient | null = null;

afterEach(async () => {
  await agent?.end();
  await broker?.close();
  agent = broker = null;
});

describe('agent MQTT reads', () => {
  it('Framed_reads_one_buffer_per_packet: a 300 KB message arrives intact, its payload a view of its own packet', async () => {
    broker = await startBroker({ host: '127.0.0.1', port: 0 });
    const a = (agent = connectMqtt({ url: broker.url, clientId: 'dev-framed', reconnectPeriodMs: 60_000, connectTimeoutMs: 10_000 }));
    const got: Buffer[] = [];
    a.onMessage((_topic, payload) => { got.push(payload); });
    await waitFor(() => a.connected, 'the agent to connect', 10_000);
    await a.subscribe('t/big');
    const payload = Buffer.alloc(300 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
    const pub = await mqtt.connectAsync(broker.url, { clientId: 'pub', reconnectPeriod: 0 });
    try {
      await pub.publishAsync('t/big', payload, { qos: 1 });
      await pub.publishAsync('t/big', Buffer.from('small'), { qos: 1 });
      await waitFor(() => got.length === 2, 'both messages', 10_000);
    } finally {
      await pub.endAsync();
    }
    expect(got[0].equals(payload)).toBe(true);
    expect(got[1].toString()).toBe('small');
    // The packet's buffer: fixed header (1 + 3 length bytes), topic (2 + 5), message id (2), then the payload.
    expect(got[0].byteOffset).toBe(13);
    expect(got[0].buffer.byteLength).toBe(13 + payload.length);
  });
});
