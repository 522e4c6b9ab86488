/**
 * The system, end to end, for a model the synthetic smoke input breaks (the
 * streaming-VAD shape: reflect padding needs ≥ 33 samples, a [2, batch, 128]
 * state, a scalar int64 sample rate): the compiled CLI refuses to build it
 * without help, builds it with --example, the real hub (authentication ON,
 * embedded broker, SQLite) takes and deploys it, and the compiled agent
 * (enrolled MQTT credentials) installs it and predicts what onnxruntime
 * computes. Before, every device refused it with AGENT_ERR_SMOKE_FAILED.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { buildStreamingVad } from '../../bundle-build/onnx-build-edge.js';
import type { Hub } from '../../hub/hub.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { buildCli } from '../helpers/build-cli.js';
import { killAll, spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { api, startTestHub } from '../helpers/hub-harness.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
let hub: Hub | undefined;
let agent: AgentProcess | undefined;
afterAll(async () => {
  agent?.child.kill('SIGTERM');
  if (agent) await Promise.race([agent.exit, new Promise((r) => setTimeout(r, 10_000))]);
  killAll();
  await hub?.close();
  cleanupTempDirs();
});

describe('a streaming-VAD shaped model through the whole system', () => {
  it('compiled CLI build with --example → hub (auth on) → compiled agent installs and predicts', async () => {
    const cli = await buildCli(repo);
    const agentEntry = join(repo, 'agent/dist/fleetcast-agent.js');
    const keys = makeKeys();
    const dir = tempDir('fleetcast-e2e-edge-');
    const model = buildStreamingVad();
    writeFileSync(join(dir, 'vad.onnx'), model);
    const x = [Array.from({ length: 96 }, (_, i) => Math.sin(i / 7) * 0.3)];
    const state = [0, 1].map(() => [new Array<number>(128).fill(0.05)]);
    const example = { x, state, sr: 16000 };
    writeFileSync(join(dir, 'example.json'), JSON.stringify({ inputs: example }));
    const build = (...more: string[]) => spawnSync(process.execPath, [cli, 'bundle', 'build', join(dir, 'vad.onnx'), '--name', 'vad', '--version', '1', '--key', join(keys.dir, 'release.key'), '--out', join(dir, 'vad-1.fcb'), ...more], { encoding: 'utf8', timeout: 60_000 });

    const refused = build();
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^error BUNDLE_ERR_SMOKE_FAILED: /);
    const built = build('--example', join(dir, 'example.json'));
    expect(built.stderr).toBe('');
    expect(built.status).toBe(0);

    hub = await startTestHub(keys, { insecureDemo: false });
    const password = new MqttCredentials(hub.store.db).enrollDevice('dev-vad').password;
    writeFileSync(join(dir, 'dev-vad.json'), JSON.stringify({ mqttUsername: 'dev-vad', mqttPassword: password }), { mode: 0o600 });
    const port = await freePort();
    agent = spawnAgent(agentEntry, ['--broker', hub.mqttUrl, '--device-id', 'dev-vad', '--data', join(dir, 'agent'), '--root', keys.rootPath, '--listen', `127.0.0.1:${port}`, '--config', join(dir, 'dev-vad.json'), '--quiet'], {
      FLEETCAST_AGENT_HEARTBEAT_MS: '0', FLEETCAST_AGENT_RECONNECT_PERIOD_MS: '200',
    });
    await waitFor(async () => (await api<{ devices: { id: string }[] }>(hub!, 'GET', '/v1/devices')).body.devices.some((d) => d.id === 'dev-vad'), 'the enrolled agent to register', 60_000, 200);
    expect((await api(hub, 'POST', '/v1/bundles', new Uint8Array(readFileSync(join(dir, 'vad-1.fcb'))))).status).toBe(201);
    expect((await api(hub, 'POST', '/v1/deployments', { name: 'vad', version: 1, devices: ['dev-vad'], allowUnknown: true })).status).toBe(200);
    const status = async () => (await fetch(`http://127.0.0.1:${port}/v1/status`)).json() as Promise<{ phase: string; active?: { version: number } }>;
    await waitFor(async () => { const s = await status(); return s.phase === 'committed' && s.active?.version === 1; }, `the agent to install vad@1 (stderr: ${agent.io.stderr.slice(-500)})`, 60_000, 200);

    const res = await fetch(`http://127.0.0.1:${port}/v1/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: example }) });
    const body = await res.json() as { outputs: Record<string, { dims: number[]; data: number[] }> };
    expect(res.status, JSON.stringify(body)).toBe(200);
    const s = await ort.InferenceSession.create(model);
    const want = await s.run({
      x: new ort.Tensor('float32', Float32Array.from(x.flat()), [1, 96]),
      state: new ort.Tensor('float32', Float32Array.from(state.flat(2)), [2, 1, 128]),
      sr: new ort.Tensor('int64', BigInt64Array.from([16000n]), []),
    });
    await s.release();
    expect(body.outputs.prob).toEqual({ dims: [1, 1], data: Array.from(want.prob.data as Float32Array) });
    expect(body.outputs.new_state.dims).toEqual([2, 1, 128]);
    expect(body.outputs.new_state.data).toEqual(Array.from(want.new_state.data as Float32Array));
  }, 240_000);
});
