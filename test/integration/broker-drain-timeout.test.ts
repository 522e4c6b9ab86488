/**
 * The embedded broker's drain timeout is a hub option (brokerDrainTimeoutMs,
 * `--broker-drain-timeout-ms`): how long a client's socket may stay full
 * before aedes disconnects it. It was aedes' fixed 60 s: at 10,000 simulated
 * devices read by one process (bench sim-scale) the broker dropped 8,000 of
 * them at once mid-install ("drain timeout"), and a field device on a slow
 * link would be dropped the same way while a bundle crosses it.
 *
 * A real hub (embedded aedes) and a subscriber that stops reading: with the
 * option at 1 s it is dropped within seconds, far sooner than aedes' default.
 */
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../hub/hub.js';
import { startTestHub } from '../helpers/hub-harness.js';
import { cleanupTempDirs, makeKeys, waitFor } from '../helpers/env.js';

const hubs: Hub[] = [];
afterAll(async () => { await Promise.all(hubs.map((h) => h.close())); cleanupTempDirs(); });

describe('embedded broker drain timeout', () => {
  it('Broker_drain_timeout_is_the_hub_option: a client that stops reading is dropped after brokerDrainTimeoutMs', async () => {
    const hub = await startTestHub(makeKeys(), { brokerDrainTimeoutMs: 1_000 });
    hubs.push(hub);
    const slow = await mqtt.connectAsync(hub.mqttUrl, { clientId: 'slow-reader', reconnectPeriod: 0 });
    const pub = await mqtt.connectAsync(hub.mqttUrl, { clientId: 'publisher', reconnectPeriod: 0 });
    try {
      await slow.subscribeAsync('drain/+', { qos: 1 });
      // Seen from the broker: a client that does not read would not notice its connection closing.
      let closedAt = 0;
      hub.broker!.aedes.on('clientDisconnect', (c) => { if (c.id === 'slow-reader') closedAt ||= Date.now(); });
      // The reader stops reading: kernel buffers fill, then the broker's writes wait for a drain that never comes.
      slow.stream.pause();
      const t0 = Date.now();
      // 16 MB: more than loopback's socket buffers hold. Not awaited: the broker acks once it has delivered.
      for (let i = 0; i < 64; i++) void pub.publishAsync(`drain/${i}`, Buffer.alloc(256 * 1024, i), { qos: 1 }).catch(() => {});
      await waitFor(() => closedAt > 0, 'the broker to drop the client that stopped reading', 30_000);
      // aedes' own default would have waited 60 s.
      expect(closedAt - t0).toBeLessThan(30_000);
    } finally {
      slow.end(true);
      await pub.endAsync();
    }
  }, 60_000);
});
