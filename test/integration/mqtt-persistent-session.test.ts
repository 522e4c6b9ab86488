/**
 * A device gets no persistent session on the embedded broker. With `clean:
 * false`, aedes keeps a disconnected client's subscriptions and queues every
 * QoS 1 message published on them until it returns, in memory and without any
 * bound (aedes-persistence's memory store has none): one enrolled device that
 * subscribes to chunk or trust topics and goes away would grow the hub's
 * memory with every transfer and checkpoint, for ever. Its subscriptions are
 * also restored at the next CONNECT without authorizeSubscribe, so a chunk
 * topic it was granted would stay readable after the grant ends. Agents always
 * connect with a clean session (agent/broker-client.ts); a device asking for a
 * persistent one is refused at CONNECT. The hub keeps its own persistent
 * session (hub/mqtt-link.ts).
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import type { Hub } from '../../hub/hub.js';
import { topics } from '../../protocol/topics.js';
import { cleanupTempDirs, makeKeys } from '../helpers/env.js';
import { startTestHub } from '../helpers/hub-harness.js';
import { connectClient } from '../helpers/mqtt-auth.js';

afterAll(cleanupTempDirs);

describe('embedded broker: no persistent sessions for devices', () => {
  let hub: Hub;
  const clients: MqttClient[] = [];
  const connect = async (id: string, password: string, clean: boolean) => { const c = await connectClient(hub.mqttUrl, { clientId: id, username: id, password, clean }); clients.push(c); return c; };

  beforeAll(async () => {
    hub = await startTestHub(makeKeys(), { insecureDemo: false });
  }, 180_000);
  afterAll(async () => { for (const c of clients) await c.endAsync(true).catch(() => {}); await hub?.close(); });

  it('Device_persistent_session_refused: a device connecting with clean: false is refused, so nothing is queued for it while it is away', async () => {
    const secret = new MqttCredentials(hub.store.db).enrollDevice('dev-p').password;
    // Before the fix this CONNECT was accepted, and a message the hub published on the device's control topic while
    // it was away was queued by the broker and delivered when it came back (sessionPresent).
    let queued: MqttClient | undefined;
    try {
      queued = await connect('dev-p', secret, false);
    } catch (e) {
      expect(String((e as Error).message)).toMatch(/not authori[sz]ed/i);
    }
    if (queued) {
      await queued.subscribeAsync(topics.control('dev-p'), { qos: 1 });
      await queued.endAsync();
      await hub.link.publish(topics.control('dev-p'), Buffer.from('published while the device was away'), { qos: 1 });
      const back = await connect('dev-p', secret, false);
      const got = await new Promise<string | null>((resolve) => {
        back.once('message', (_t, p) => resolve(p.toString()));
        setTimeout(() => resolve(null), 3_000);
      });
      expect.fail(`a device was given a persistent session; on return it received ${JSON.stringify(got)}`);
    }
    // The same device with a clean session is served as before.
    const c = await connect('dev-p', secret, true);
    expect((await c.subscribeAsync(topics.control('dev-p'), { qos: 1 }))[0].qos).toBe(1);
  }, 60_000);
});
