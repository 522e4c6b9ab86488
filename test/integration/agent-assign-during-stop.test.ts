/**
 * An assignment that the broker delivers while the agent is stopping (its MQTT
 * client ends after the installer has stopped) is not acted on: the signature
 * check runs on the threadpool, so without a guard it would finish after
 * stop() and start an install on a stopped agent (its inference thread closed,
 * its state written after stop). The retained assignment comes again on the
 * next start.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, type BrokerClient } from '../../agent/broker-client.js';
import type { AgentOptions } from '../../agent/options.js';
import { topics } from '../../protocol/topics.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { fixture, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { cleanupTempDirs } from '../helpers/env.js';

let fx: Fixture;
beforeAll(async () => { fx = await fixture(); });
afterAll(async () => {
  await fx?.close();
  cleanupTempDirs();
});

describe('agent stop', () => {
  it('an assignment delivered while the agent stops starts no install after stop()', async () => {
    const b = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 91 } }));
    let deliver: ((topic: string, payload: Buffer) => void) | null = null;
    let late: Buffer | null = null;
    // The real client, except that it hands the agent one more message as it ends (the broker sent it meanwhile).
    const connect = (o: AgentOptions): BrokerClient => {
      const client = connectMqtt({ url: o.brokerUrl!, clientId: o.deviceId, reconnectPeriodMs: o.reconnectPeriodMs, connectTimeoutMs: o.connectTimeoutMs });
      const onMessage = client.onMessage.bind(client);
      const end = client.end.bind(client);
      client.onMessage = (h) => { deliver = h; onMessage(h); };
      client.end = () => {
        if (late) deliver?.(topics.assign(o.deviceId), late);
        return end();
      };
      return client;
    };
    const agent = fx.newAgent('dev-stop-assign', {}, { connect });
    await agent.start();
    await fx.hub.assign('dev-stop-assign', b, 1);
    await waitInstalled(agent, b.bundleId);
    const state = () => JSON.parse(readFileSync(join(agent.options.dataDir, 'state.json'), 'utf8')) as { counter: number; active: { bundleId: string } | null };
    expect(state().counter).toBe(1);

    const v2 = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: 92 } }));
    late = fx.hub.assignMessage('dev-stop-assign', v2, 2);
    await agent.stop();
    // Whatever the installer had taken in has been dealt with once it is idle (without the guard, an install
    // started after stop() fetches over an ended connection and idle() never comes: a bounded wait).
    await Promise.race([agent.idle(), new Promise((resolve) => setTimeout(resolve, 20_000))]);
    expect(agent.status().counter).toBe(1);
    expect(state().counter).toBe(1);
    expect(state().active?.bundleId).toBe(b.bundleId);
  });
});
