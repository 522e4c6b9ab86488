/**
 * The agent installs real bundles over a real aedes broker (from the hub
 * double), serves them with real onnxruntime-node, swaps under load without a
 * failed request, serves its persisted model after a restart with no broker,
 * and re-requests exactly the chunks it lost.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, type AgentSeams } from '../../agent/agent.js';
import { diskStorage } from '../../agent/disk-storage.js';
import { createOrtRuntime, SessionCache } from '../../agent/runtime.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { verifyChunk } from '../../bundles/verify.js';
import { chunkWatch } from '../helpers/chunk-watch.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { fixture, http, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { cleanupTempDirs, freePort, waitFor } from '../helpers/env.js';

let fx: Fixture;
beforeAll(async () => { fx = await fixture(); });
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

const rows = (n: number, seed = 0) => ({
  x: Array.from({ length: n }, (_, i) => [0.1 * i + seed, -0.5 + i, 2 - 0.3 * i, seed]),
  category: Array.from({ length: n }, (_, i) => [(i + seed) % 5]),
});

/** An agent (no probation) that installed v1 then v2 (MLP seeds `seed`, `seed + 1`): v1 is kept as the previous slot. */
async function twoInstalled(deviceId: string, seed: number, seams: AgentSeams = {}) {
  const v1 = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed } }));
  const v2 = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: seed + 1 } }));
  const agent = fx.newAgent(deviceId, { probationMs: 0 }, seams);
  await agent.start();
  await fx.hub.assign(deviceId, v1, 1);
  await waitInstalled(agent, v1.bundleId);
  await fx.hub.assign(deviceId, v2, 2);
  await waitInstalled(agent, v2.bundleId);
  await agent.idle();
  return { agent, v1, v2 };
}

describe('agent install', () => {
  it('installs an assigned bundle and predicts what onnxruntime-node computes directly', async () => {
    const b = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 3 } }));
    const agent = fx.newAgent('dev-install', { listen: '127.0.0.1:0' });
    await agent.start();
    const port = agent.address!.port;
    expect((await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: rows(1) }))).json.error.code).toBe('AGENT_ERR_NO_MODEL');

    await fx.hub.assign('dev-install', b, 1);
    await waitInstalled(agent, b.bundleId);

    const inputs = rows(3, 1);
    const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs }));
    expect(r.status).toBe(200);
    const direct = await ort.InferenceSession.create(b.model);
    const want = await direct.run({
      x: new ort.Tensor('float32', Float32Array.from(inputs.x.flat()), [3, 4]),
      category: new ort.Tensor('int64', BigInt64Array.from(inputs.category.flat().map(BigInt)), [3, 1]),
    });
    await direct.release();
    expect(r.json.outputs.y.dims).toEqual([3, 2]);
    expect(r.json.outputs.y.data).toEqual(Array.from(want.y.data as Float32Array));
    expect(r.json.model).toEqual({ name: 'mlp', version: 1, sha256: b.manifest.payload.rawSha256, bundleId: b.bundleId });
    expect(typeof r.json.latencyMs).toBe('number');

    // The hub hears about it: a retained committed state and an installed event.
    await waitFor(() => fx.hub.states.some((s) => s.deviceId === 'dev-install' && s.phase === 'committed' && s.active?.bundleId === b.bundleId), 'committed state report');
    await waitFor(() => fx.hub.events.some((e) => e.deviceId === 'dev-install' && e.kind === 'installed' && e.bundleId === b.bundleId), 'installed event');
    const status = (await http(port, 'GET', '/v1/status')).json;
    expect(status).toMatchObject({ deviceId: 'dev-install', phase: 'committed', counter: 1, active: { bundleId: b.bundleId, version: 1 } });
    expect(status.active.inputs.map((i: { name: string }) => i.name)).toEqual(['x', 'category']);
    // Staging is cleaned up once committed.
    expect(readdirSync(join(agent.options.dataDir, 'staging'))).toEqual([]);
  });

  it('swaps v1 → v2 with hundreds of requests in flight across the swap and none failing', async () => {
    const cache = new SessionCache();
    const v1 = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 11, extraLayers: 2 } }));
    const v2 = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: 12, extraLayers: 2 } }));
    const agent = fx.newAgent('dev-swap', { listen: '127.0.0.1:0', maxConcurrentPredictions: 1000 }, { runtime: createOrtRuntime({ cache }) });
    await agent.start();
    await fx.hub.assign('dev-swap', v1, 1);
    await waitInstalled(agent, v1.bundleId);

    // Keep CONCURRENCY in-process predictions outstanding at every moment; each holds
    // its model from the call on. Events share one clock to order launches and completions.
    const CONCURRENCY = 300;
    let clock = 0;
    let running = true;
    let failures = 0;
    const done: { version: number; launched: number; completed: number }[] = [];
    const launch = (): void => {
      const launched = clock++;
      agent.predict({ inputs: rows(2, launched % 7) }).then(
        (r) => { done.push({ version: r.model.version, launched, completed: clock++ }); },
        () => { failures++; },
      ).finally(() => { if (running) launch(); });
    };
    for (let i = 0; i < CONCURRENCY; i++) launch();
    // The HTTP path runs alongside, on keep-alive sockets.
    let httpFailures = 0;
    let httpOk = 0;
    const httpLoop = async () => {
      while (running) {
        const r = await http(agent.address!.port, 'POST', '/v1/predict', JSON.stringify({ inputs: rows(1) }));
        if (r.status === 200) httpOk++; else httpFailures++;
      }
    };
    const loops = Array.from({ length: 8 }, httpLoop);

    await waitFor(() => done.length > 500, 'load before the swap');
    await fx.hub.assign('dev-swap', v2, 2);
    await waitInstalled(agent, v2.bundleId);
    const swappedAt = done.length;
    await waitFor(() => done.filter((d) => d.version === 2).length > 500 && done.length > swappedAt + 500, 'load after the swap');
    running = false;
    await Promise.all(loops);
    await waitFor(() => agent.status().inflight === 0, 'drain');

    expect(failures).toBe(0);
    expect(httpFailures).toBe(0);
    expect(httpOk).toBeGreaterThan(0);
    // Atomic switch: by launch order, every v1 request comes before every v2 request.
    const byLaunch = [...done].sort((a, b) => a.launched - b.launched);
    const firstV2 = byLaunch.findIndex((d) => d.version === 2);
    expect(byLaunch.slice(firstV2).every((d) => d.version === 2)).toBe(true);
    // Requests in flight across the swap: on v1, still running when the first v2 request started.
    const firstV2Launch = byLaunch[firstV2].launched;
    const across = done.filter((d) => d.version === 1 && d.completed > firstV2Launch).length;
    expect(across).toBeGreaterThanOrEqual(200);
    // The old session is released once those drained.
    await waitFor(() => cache.refs(v1.manifest.payload.rawSha256) === 0, 'v1 session released');
    expect(cache.refs(v2.manifest.payload.rawSha256)).toBe(1);
    expect(agent.status().previous).toEqual({ bundleId: v1.bundleId, name: 'mlp', version: 1 });
  });

  it('Swap_back_to_kept_model_accepts_into_staging: one fsynced state write fewer, nothing fetched', async () => {
    // The previous model stays unpacked for rollback; a new assignment of it reuses the files. The
    // accept write records the phase the run starts in (staging), so staging needs no write of its
    // own: accept+staging, swapping, committed = 3 state writes (4 before: accept as fetching first).
    const { agent, v1, v2 } = await twoInstalled('dev-swap-back', 41);
    const saves = () => JSON.parse(readFileSync(join(agent.options.dataDir, 'state.json'), 'utf8')).saves as number;
    const before = saves();
    const fetched = fx.hub.requestsFor(v1.bundleId).length;
    await fx.hub.assign('dev-swap-back', v1, 3);
    await waitInstalled(agent, v1.bundleId);
    await agent.idle();
    expect(fx.hub.requestsFor(v1.bundleId).length).toBe(fetched);
    expect(saves() - before).toBe(3);
    expect(agent.status()).toMatchObject({ phase: 'committed', counter: 3, active: { bundleId: v1.bundleId }, previous: { bundleId: v2.bundleId } });
  });

  it('Swap_back_to_kept_model_hashes_its_file_again: a file changed since is refused and fetched again', async () => {
    // A kept model's file is read and hashed against its signed raw sha256 before every swap back to it: no stat of
    // the file can tell that its bytes are still the ones this agent checked (see the next test).
    const hashed: string[] = [];
    const storage = { ...diskStorage, hash: (path: string) => { hashed.push(path); return diskStorage.hash(path); } };
    const { agent, v1, v2 } = await twoInstalled('dev-swap-nohash', 43, { storage });
    const modelFile = (id: string) => join(agent.options.dataDir, 'models', id, 'model.onnx');
    const fetchedV1 = fx.hub.requestsFor(v1.bundleId).length;
    hashed.length = 0;
    await fx.hub.assign('dev-swap-nohash', v1, 3);
    await waitInstalled(agent, v1.bundleId);
    await agent.idle();
    expect(fx.hub.requestsFor(v1.bundleId).length).toBe(fetchedV1);
    expect(hashed.filter((p) => p === modelFile(v1.bundleId))).toHaveLength(1);

    // The kept v2 file changes on disk (same size, one byte flipped): it is hashed again, not reused, and fetched anew.
    const bytes = readFileSync(modelFile(v2.bundleId));
    bytes[bytes.length - 10] ^= 0x01;
    writeFileSync(modelFile(v2.bundleId), bytes);
    const fetchedV2 = fx.hub.requestsFor(v2.bundleId).length;
    await fx.hub.assign('dev-swap-nohash', v2, 4);
    await waitInstalled(agent, v2.bundleId);
    await agent.idle();
    expect(hashed.filter((p) => p === modelFile(v2.bundleId))).toHaveLength(1);
    expect(fx.hub.requestsFor(v2.bundleId).length).toBeGreaterThan(fetchedV2);
    expect(readFileSync(modelFile(v2.bundleId)).equals(v2.model)).toBe(true);
    expect(agent.status()).toMatchObject({ phase: 'committed', counter: 4, active: { bundleId: v2.bundleId } });
  });

  it('Swap_back_refuses_a_kept_model_file_changed_where_its_stat_does_not_show', async () => {
    // A write through a shared writable mapping to a page already dirty takes no page fault, so the kernel moves
    // neither mtime nor ctime (and coarse timestamps hide a same-size rewrite within one tick): device, inode, size
    // and both times can stay what they were when the agent last hashed the file while its bytes change. This
    // storage reports each model file's first stat for good, as such a change looks; a swap back that trusted an
    // unchanged stat would load the changed bytes unchecked.
    const first = new Map<string, Awaited<ReturnType<typeof diskStorage.stat>>>();
    const storage = {
      ...diskStorage,
      async stat(path: string) {
        if (!path.endsWith('model.onnx')) return diskStorage.stat(path);
        if (!first.get(path)) first.set(path, await diskStorage.stat(path));
        return first.get(path)!;
      },
    };
    const { agent, v1 } = await twoInstalled('dev-swap-stat', 45, { storage });
    const file = join(agent.options.dataDir, 'models', v1.bundleId, 'model.onnx');
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] ^= 0x01;
    writeFileSync(file, bytes);
    const fetched = fx.hub.requestsFor(v1.bundleId).length;
    await fx.hub.assign('dev-swap-stat', v1, 3);
    await waitInstalled(agent, v1.bundleId);
    await agent.idle();
    // The changed file was hashed, refused and fetched anew: the device serves the signed bytes.
    expect(fx.hub.requestsFor(v1.bundleId).length).toBeGreaterThan(fetched);
    expect(readFileSync(file).equals(v1.model)).toBe(true);
    expect(agent.status()).toMatchObject({ phase: 'committed', counter: 3, active: { bundleId: v1.bundleId } });
  });

  it('installs a bundle whose golden cases hold on this device', async () => {
    const model = buildMlp({ categorical: true, seed: 7 });
    const inputs = { x: [[0.5, 1, -1, 2], [0, 0, 0, 0]], category: [[1], [4]] };
    const s = await ort.InferenceSession.create(model);
    const out = await s.run({
      x: new ort.Tensor('float32', Float32Array.from(inputs.x.flat()), [2, 4]),
      category: new ort.Tensor('int64', BigInt64Array.from(inputs.category.flat().map(BigInt)), [2, 1]),
    });
    await s.release();
    const golden = [{ inputs, outputs: { y: { dims: [2, 2], data: Array.from(out.y.data as Float32Array) } }, tolerance: 1e-5 }];
    const b = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 7 }, golden }));
    expect(b.manifest.golden).toHaveLength(1);
    const agent = fx.newAgent('dev-golden');
    await agent.start();
    await fx.hub.assign('dev-golden', b, 1);
    await waitInstalled(agent, b.bundleId);
  });

  it('after a restart serves the persisted model with no broker, and refuses a model file changed on disk', async () => {
    const b = fx.hub.add(await makeBundle(fx.keys, { version: 4, mlp: { seed: 21 } }));
    const first = fx.newAgent('dev-restart');
    await first.start();
    await fx.hub.assign('dev-restart', b, 1);
    await waitInstalled(first, b.bundleId);
    const before = await first.predict({ inputs: rows(2) });
    await first.stop();

    // Nothing listens on this port: the agent must not wait for a broker to serve.
    const deadPort = await freePort();
    const opts = { ...first.options, brokerUrl: `mqtt://127.0.0.1:${deadPort}`, listen: '127.0.0.1:0' };
    const second = createAgent(opts);
    fx.agents.push(second);
    await second.start();
    expect(second.status()).toMatchObject({ connected: false, active: { bundleId: b.bundleId }, counter: 1 });
    const after = await second.predict({ inputs: rows(2) });
    expect(after.outputs).toEqual(before.outputs);
    expect((await http(second.address!.port, 'POST', '/v1/predict', JSON.stringify({ inputs: rows(2) }))).json.outputs).toEqual(before.outputs);
    await second.stop();

    // A flipped byte in the installed model file: the boot check refuses to serve it.
    const file = join(first.options.dataDir, 'models', b.bundleId, 'model.onnx');
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] ^= 0x01;
    writeFileSync(file, bytes);
    const third = createAgent({ ...opts, brokerUrl: null });
    fx.agents.push(third);
    await third.start();
    expect(third.status().active).toBeNull();
    expect(third.status().lastError?.code).toBe('AGENT_ERR_PAYLOAD_HASH');
    await expect(third.predict({ inputs: rows(1) })).rejects.toMatchObject({ code: 'AGENT_ERR_NO_MODEL', status: 503 });
  });

  it('re-requests exactly a lost chunk, and resumes a fetch after a restart without refetching staged chunks', async () => {
    const b = fx.hub.add(await makeBundle(fx.keys, { version: 5, mlp: { seed: 31, padFloats: 6000 }, chunkSize: 1024 }));
    const n = b.manifest.payload.chunkHashes.length;
    expect(n).toBeGreaterThan(10);
    fx.hub.dropOnce.set(b.bundleId, new Set([5]));
    const watch = chunkWatch((id) => fx.hub.bundles.get(id)?.manifest);
    const agent = fx.newAgent('dev-lossy', { chunkTimeoutMs: 300 }, { connect: watch.connect });
    await agent.start();
    await fx.hub.assign('dev-lossy', b, 1);
    await waitInstalled(agent, b.bundleId);
    const reqs = fx.hub.requestsFor(b.bundleId);
    expect(reqs[0]).toEqual(Array.from({ length: n }, (_, i) => i));
    // The lost chunk was asked for again; and no request ever asked for a chunk the agent already held.
    // (On a loaded machine a timeout retry may also list chunks still in flight: legitimate, so not an exact list.)
    expect(reqs.slice(1).some((r) => r.includes(5))).toBe(true);
    expect(watch.sent.filter((r) => r.bundleId === b.bundleId).length).toBe(reqs.length);
    expect(watch.refetched()).toEqual([]);

    // Interrupted fetch: chunk 7 never comes while the first agent runs; a restarted
    // agent on the same data folder asks only for chunk 7.
    const c = fx.hub.add(await makeBundle(fx.keys, { version: 6, mlp: { seed: 32, padFloats: 6000 }, chunkSize: 1024 }));
    fx.hub.dropOnce.set(c.bundleId, new Set([7]));
    const slow = fx.newAgent('dev-resume', { chunkTimeoutMs: 60_000 });
    await slow.start();
    await fx.hub.assign('dev-resume', c, 1);
    const nc = c.manifest.payload.chunkHashes.length;
    await waitFor(() => slow.status().progress?.have === nc - 1, 'all chunks but one staged');
    await slow.stop();
    // One staging file with every chunk but 7 at its offset, each matching its signed hash.
    const staged = readFileSync(join(slow.options.dataDir, 'staging', c.bundleId, 'payload.zst'));
    expect(staged.length).toBe(c.manifest.payload.compressedLength);
    const size = c.manifest.payload.chunkSize;
    const valid = Array.from({ length: nc }, (_, i) => i).filter((i) => verifyChunk(c.manifest, i, staged.subarray(i * size, (i + 1) * size)));
    expect(valid).toEqual(Array.from({ length: nc }, (_, i) => i).filter((i) => i !== 7));
    const resumed = createAgent({ ...slow.options, chunkTimeoutMs: 60_000 }); // no timeout retry on a slow machine: the one request is the whole claim
    fx.agents.push(resumed);
    const before = fx.hub.requestsFor(c.bundleId).length;
    await resumed.start();
    await waitInstalled(resumed, c.bundleId);
    expect(fx.hub.requestsFor(c.bundleId).slice(before)).toEqual([[7]]);
  });
});
