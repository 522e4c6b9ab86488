/**
 * The spine end to end with every real part: a real hub (SQLite file, fastify,
 * embedded aedes or Debian's mosquitto), real agents (the agent code, real
 * onnxruntime-node sessions, predict over real HTTP), real signed bundles.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../../agent/agent.js';
import { buildBundle } from '../../bundle-build/build.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { HubClient } from '../../cli/hub-client.js';
import type { Hub } from '../../hub/hub.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { adminToken, startTestHub } from '../helpers/hub-harness.js';
import { hasMosquitto, startMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';

afterAll(cleanupTempDirs);

const MODELS = { 1: buildMlp({ features: 4, categorical: true, seed: 11 }), 2: buildMlp({ features: 4, categorical: true, seed: 12 }) } as const;

async function predictHttp(agent: Agent, body: unknown): Promise<{ status: number; json: any }> {
  const a = agent.address!;
  const res = await fetch(`http://${a.host}:${a.port}/v1/predict`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { status: res.status, json: await res.json() };
}

async function directRun(model: Uint8Array, x: number[][], category: number[][]): Promise<number[]> {
  const s = await ort.InferenceSession.create(model);
  try {
    const out = await s.run({
      x: new ort.Tensor('float32', Float32Array.from(x.flat()), [x.length, x[0].length]),
      category: new ort.Tensor('int64', BigInt64Array.from(category.flat().map(BigInt)), [category.length, 1]),
    });
    return Array.from(out.y.data as Float32Array);
  } finally {
    await s.release();
  }
}

async function spine(brokerFor: (hub: Hub) => string, hubOver: Record<string, unknown> = {}) {
  const keys = makeKeys();
  const dir = tempDir();
  const bundles: Awaited<ReturnType<typeof buildBundle>>[] = [];
  for (const v of [1, 2] as const) {
    const model = join(dir, `m${v}.onnx`);
    writeFileSync(model, MODELS[v]);
    bundles.push(await buildBundle({ model, name: 'spine', version: v, releaseKeys: [keys.keys.release], out: join(dir, `spine-${v}.fcb`), chunkSize: 4096 }));
  }
  const hub = await startTestHub(keys, hubOver);
  const api = new HubClient(hub.httpUrl, adminToken(hub));
  const agents = ['dev-a', 'dev-b', 'dev-c'].map((deviceId) => createAgent({
    deviceId, dataDir: join(dir, deviceId), rootPath: keys.rootPath, brokerUrl: brokerFor(hub), listen: '127.0.0.1:0', heartbeatMs: 0,
  }));
  try {
    await Promise.all(agents.map((a) => a.start()));
    await waitFor(async () => (await api.devices()).devices.length === agents.length, 'devices registered');

    // v1: publish, deploy to all, every agent installs.
    await api.publish(bundles[0].path);
    const d1 = await api.deploy({ name: 'spine', version: 1, all: true });
    expect(d1.devices.sort()).toEqual(['dev-a', 'dev-b', 'dev-c']);
    await waitFor(() => agents.every((a) => a.status().active?.version === 1), 'v1 installed everywhere');

    // Predictions over HTTP give the numbers a direct onnxruntime-node session gives.
    const x = [[0.5, -1, 2, 0.25], [1, 1, 1, 1]];
    const category = [[3], [0]];
    const want1 = await directRun(MODELS[1], x, category);
    for (const a of agents) {
      const r = await predictHttp(a, { inputs: { x, category } });
      expect(r.status).toBe(200);
      expect(r.json.model).toMatchObject({ name: 'spine', version: 1, sha256: bundles[0].manifest.payload.rawSha256, bundleId: bundles[0].bundleId });
      expect(r.json.outputs.y.dims).toEqual([2, 2]);
      r.json.outputs.y.data.forEach((v: number, i: number) => expect(v).toBeCloseTo(want1[i], 6));
    }

    // The hub's registry shows what the devices report: each device's own `active` (from its state
    // report), not the hub's assignment, which names v1 from the deploy on.
    await waitFor(async () => {
      const listed = (await api.devices()).devices;
      return listed.length === agents.length && listed.every((d) => d.active?.bundleId === bundles[0].bundleId);
    }, 'registry shows v1 as the devices report it');

    // v2 under continuous predictions: zero failures, and both versions served.
    let running = true;
    const seen = new Set<number>();
    let ok = 0;
    const failures: unknown[] = [];
    const loops = agents.map(async (a) => {
      while (running) {
        const r = await predictHttp(a, { inputs: { x, category } });
        if (r.status === 200) { ok++; seen.add(r.json.model.version); } else failures.push(r.json);
      }
    });
    await waitFor(() => ok > 30, 'predictions flowing on v1');
    await api.publish(bundles[1].path);
    await api.deploy({ name: 'spine', version: 2, all: true });
    await waitFor(() => agents.every((a) => a.status().active?.version === 2), 'v2 installed everywhere', 60_000);
    const after = ok;
    await waitFor(() => ok > after + 30, 'predictions flowing on v2');
    running = false;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    expect([...seen].sort()).toEqual([1, 2]);
    const want2 = await directRun(MODELS[2], x, category);
    const r2 = await predictHttp(agents[0], { inputs: { x, category } });
    expect(r2.status).toBe(200);
    expect(r2.json.model.version).toBe(2);
    expect(r2.json.outputs.y.dims).toEqual([2, 2]);
    expect(r2.json.outputs.y.data).toHaveLength(want2.length);
    r2.json.outputs.y.data.forEach((v: number, i: number) => expect(v).toBeCloseTo(want2[i], 6));
    expect(agents[0].status().previous?.version).toBe(1);
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    await hub.close();
  }
}

describe('the signed-bundle spine', () => {
  it('embedded aedes: publish → deploy → verify → install → predict, then v1 → v2 under load with zero failures', async () => {
    await spine((hub) => hub.mqttUrl);
  }, 120_000);

  describe.skipIf(!hasMosquitto)('external broker', () => {
    let mosq: Mosquitto;
    afterAll(async () => { await mosq?.stop(); });
    it('mosquitto: the same flow through Debian\'s broker', async () => {
      mosq = await startMosquitto();
      await spine(() => mosq.url, { brokerUrl: mosq.url });
    }, 120_000);
  });
});
