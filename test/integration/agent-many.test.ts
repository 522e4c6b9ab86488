/**
 * Many agents in one process (the simulator's shape): one trust root object
 * and one shared onnxruntime session per distinct model, each agent with its
 * own MQTT connection, state folder and install state machine.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../../agent/agent.js';
import { createOrtRuntime, SessionCache } from '../../agent/runtime.js';
import { loadRootText } from '../../signing/root.js';
import { fixture, type Fixture } from '../helpers/agent-fixture.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';

let fx: Fixture;
beforeAll(async () => { fx = await fixture(); });
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

const N = Number(process.env.FLEETCAST_MANY_AGENTS ?? 100);

describe('many agents in one process', () => {
  it(`${N} agents install one bundle and share a single session`, async () => {
    const b = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 101 } }));
    const cache = new SessionCache();
    const runtime = createOrtRuntime({ cache });
    const root = loadRootText(readFileSync(fx.keys.rootPath, 'utf8'));
    const agents: Agent[] = [];
    for (let i = 0; i < N; i++) {
      const a = createAgent({ deviceId: `sim-${i}`, brokerUrl: fx.broker.url, dataDir: tempDir('fleetcast-sim-'), rootPath: fx.keys.rootPath, heartbeatMs: 0 }, { runtime, root });
      fx.agents.push(a);
      agents.push(a);
    }
    await Promise.all(agents.map((a) => a.start()));
    await Promise.all(agents.map((a, i) => fx.hub.assign(`sim-${i}`, b, 1)));
    await waitFor(() => agents.every((a) => a.status().phase === 'committed'), 'all installed', 60_000, 50);
    expect(cache.size).toBe(1);
    expect(cache.refs(b.manifest.payload.rawSha256)).toBe(N);
    const outs = await Promise.all(agents.map((a) => a.predict({ inputs: { x: [[1, 2, 3, 4]], category: [[2]] } })));
    expect(new Set(outs.map((o) => JSON.stringify(o.outputs))).size).toBe(1);
    await Promise.all(agents.map((a) => a.stop()));
    expect(cache.size).toBe(0);
  });
});
