/**
 * One device floods the real hub (secure mode, embedded broker, enrolled
 * credentials) with state reports, events, chunk and proof requests: the hub's
 * inbound queue stays within its bound (the flooder's share plus one state
 * report per device), the flooder's latest state is what the registry keeps,
 * and another device's reports still get through. The invariants are checked,
 * not timings: how far the hub falls behind depends on the machine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import type { Hub } from '../../hub/hub.js';
import { DEVICE_CHANNEL_LIMITS } from '../../protocol/channel-limits.js';
import { encode } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { cleanupTempDirs, makeKeys, waitFor } from '../helpers/env.js';
import { stateReport } from '../helpers/hub-fixtures.js';
import { startTestHub } from '../helpers/hub-harness.js';
import { connectClient } from '../helpers/mqtt-auth.js';

afterAll(cleanupTempDirs);

const BOUND = 1024 * 1024;

describe('a flooding device against the real hub', () => {
  let hub: Hub;
  const creds: Record<string, string> = {};
  beforeAll(async () => {
    hub = await startTestHub(makeKeys(), { insecureDemo: false, inboundQueueBytes: BOUND });
    const store = new MqttCredentials(hub.store.db);
    for (const d of ['flood', 'calm']) creds[d] = store.enrollDevice(d).password;
  }, 60_000);
  afterAll(async () => { await hub?.close(); });

  it('Flooding_device_keeps_hub_queue_bounded: its state is coalesced to the latest, its other messages shed past its share, another device is served', async () => {
    const flood = await connectClient(hub.mqttUrl, { clientId: 'flood', username: 'flood', password: creds.flood });
    const calm = await connectClient(hub.mqttUrl, { clientId: 'calm', username: 'calm', password: creds.calm });
    try {
      const N = 600;
      const pad = 'p'.repeat(DEVICE_CHANNEL_LIMITS.state.maxBytes - 2_000);
      const chunkReq = encode({ v: 1, deviceId: 'flood', bundleId: 'b'.repeat(64), chunks: Array.from({ length: 2_000 }, (_, i) => i) });
      for (let i = 1; i <= N; i++) {
        // QoS 0, not awaited: as fast as the socket takes them.
        void flood.publishAsync(topics.device('flood', 'state'), encode({ ...stateReport('flood', { seq: i, phase: i === N ? 'fetching' : 'idle' }), capabilities: { pad } }), { qos: 0 });
        void flood.publishAsync(topics.device('flood', 'event'), encode({ v: 1, deviceId: 'flood', seq: i, at: 1, kind: 'fetch-failed', code: 'AGENT_ERR_X', detail: 'd'.repeat(1_000) }), { qos: 0 });
        void flood.publishAsync(topics.device('flood', 'chunk-req'), chunkReq, { qos: 0 });
        void flood.publishAsync(topics.device('flood', 'proof-req'), encode({ v: 1, deviceId: 'flood', from: 0, to: 1 }), { qos: 0 });
        if (i === N / 2) void calm.publishAsync(topics.device('calm', 'state'), encode(stateReport('calm', { seq: 1, phase: 'committed' })), { qos: 1 });
      }
      // QoS 1 after the flood: once acknowledged, every earlier message of this client has reached the hub's queue.
      await flood.publishAsync(topics.device('flood', 'event'), encode({ v: 1, deviceId: 'flood', seq: N + 1, at: 1, kind: 'fetch-started' }), { qos: 1 });
      await waitFor(() => hub.store.getDevice('calm')?.phase === 'committed', 'the calm device\'s report', 60_000);
      // The flooder's latest state is the one kept (coalescing drops only superseded reports).
      await waitFor(() => hub.store.getDevice('flood')?.state.seq === N, 'the flooder\'s latest state', 60_000);
      expect(hub.store.getDevice('flood')?.phase).toBe('fetching');
      // Bounded by the flooder's share (and its largest message), plus one state report per device: not by what it sent (~40 MB).
      const most = BOUND / 16 + DEVICE_CHANNEL_LIMITS['chunk-req'].maxBytes + 2 * DEVICE_CHANNEL_LIMITS.state.maxBytes;
      expect(hub.link.queue.peakBytes).toBeLessThanOrEqual(most);
      await waitFor(() => hub.link.queue.bytes === 0, 'the queue to drain', 60_000);
    } finally {
      await flood.endAsync(true);
      await calm.endAsync(true);
    }
  }, 120_000);
});
