/** Shared set-up for the trust and audit suites: a real hub, real in-process agents, a published and deployed bundle. */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { expect, vi } from 'vitest';
import { createAgent, type Agent, type AgentSeams } from '../../agent/agent.js';
import type { AgentOptionsInput } from '../../agent/options.js';
import type { Hub } from '../../hub/hub.js';
import type { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { makeKeys, tempDir, waitFor } from './env.js';
import { adminToken, api, makeBundle, startTestHub, type TestKeys } from './hub-harness.js';
import { readFileSync } from 'node:fs';

export function newAgent(hub: Hub, keys: TestKeys, deviceId: string, extra: Partial<AgentOptionsInput> = {}, seams: AgentSeams = {}): Agent {
  return createAgent({ deviceId, brokerUrl: hub.mqttUrl, dataDir: tempDir('fleetcast-agent-'), rootPath: keys.rootPath, heartbeatMs: 0, chunkTimeoutMs: 500, reconnectPeriodMs: 100, ...extra }, seams);
}

/** A hub with `devices` agents that installed churn@1; the caller stops them. */
export async function deployedFleet(devices: string[], o: { keys?: TestKeys; hubOver?: Record<string, unknown> } = {}) {
  const keys = o.keys ?? makeKeys();
  const hub = await startTestHub(keys, o.hubOver ?? {});
  const f = await deployedFleetOn(hub, keys, devices);
  return { ...f, async close() { await f.close(); await hub.close(); } };
}

/**
 * Real agents on an existing hub install churn@1 (deployed to them and to `also`, device ids with no agent).
 * With `credentials` each agent is enrolled; with `passwords` they use the given secrets.
 */
export async function deployedFleetOn(hub: Hub, keys: TestKeys, devices: string[], o: { credentials?: MqttCredentials; passwords?: Record<string, string>; also?: string[] } = {}) {
  const agents = devices.map((d) => {
    const password = o.credentials ? o.credentials.enrollDevice(d).password : o.passwords?.[d];
    return newAgent(hub, keys, d, password ? { mqttUsername: d, mqttPassword: password } : {});
  });
  await Promise.all(agents.map((a) => a.start()));
  await waitFor(async () => (await api<{ devices: { id: string }[] }>(hub, 'GET', '/v1/devices')).body.devices.filter((d) => devices.includes(d.id)).length === devices.length, 'devices registered');
  const bundle = await makeBundle([keys.keys.release], { chunkSize: 4096 });
  expect((await api(hub, 'POST', '/v1/bundles', readFileSync(bundle.path))).status).toBe(201);
  expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: [...devices, ...(o.also ?? [])], allowUnknown: true })).status).toBe(200);
  await waitFor(() => agents.every((a) => a.status().active?.version === 1), 'v1 installed everywhere');
  return {
    keys, hub, agents, bundle, token: adminToken(hub),
    async close() { for (const a of agents) await a.stop(); },
  };
}

export function copyDir(src: string): string {
  const d = tempDir('fleetcast-audit-copy-');
  cpSync(src, d, { recursive: true });
  return d;
}

/** Run a CLI command module in-process; returns its exit status and what it printed. */
export async function runCommand(mod: { run(argv: string[]): Promise<number> }, argv: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = ''; let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { out += String(s); return true; });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { err += String(s); return true; });
  try {
    return { status: await mod.run(argv), out, err };
  } finally { o.mockRestore(); e.mockRestore(); }
}

export const joinPath = join;
