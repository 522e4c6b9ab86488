/**
 * The devices of a scenario: one fleet per group (simulator/fleet.ts), each
 * device with its own MQTT credential when the hub authenticates (enrolled
 * through the hub's API with an operator token, or read from the files of
 * `fleetcast device enroll --file … --out-dir DIR`), its group's tags and
 * hardware as capabilities, and its group's runtime. Groups a link fault
 * touches connect through their own relay (link-proxy.ts); a group with a
 * NaN-outputs fault runs a runtime whose outputs turn NaN while it lasts, and
 * one with a clock-skew fault reads a clock the fault moves. A group with a
 * disk-full fault keeps its devices' data folders in memory (agent/memory-storage.ts),
 * whose capacity the fault can lower while it lasts; the other groups use the disk.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentOptionsInput } from '@fleetcast/agent/options.js';
import { createOrtRuntime, SessionCache, type LoadedModel, type ModelRuntime, type TensorData } from '@fleetcast/agent/runtime.js';
import { MemoryStorage } from '@fleetcast/agent/memory-storage.js';
import { TELEMETRY_DEFAULTS } from '@fleetcast/agent/telemetry/collector.js';
import { errorCode } from '@fleetcast/protocol/errors.js';
import { simError } from './errors.js';
import { startFleet, type Fleet } from './fleet.js';
import { startLinkProxy, type LinkProxy } from './link-proxy.js';
import type { GroupSpec, ScenarioFile } from './scenario-file.js';

/** What the simulator needs of the hub's API (cli/hub-client.ts HubClient has it). */
export interface HubApi {
  publish(file: string): Promise<{ bundleId: string; name: string; version: number }>;
  deploy(req: { name: string; version: number; all?: true; devices?: string[]; allowUnknown?: boolean }): Promise<{ devices: string[] }>;
  startRollout<T>(req: Record<string, unknown>): Promise<T>;
  rollout<T>(id: string): Promise<T>;
  rolloutHistory<T>(id: string): Promise<T>;
  get<T>(path: string): Promise<T>;
  send<T>(method: 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T>;
}

export interface Credential { mqttUsername: string; mqttPassword: string }

export interface DeviceGroup {
  spec: GroupSpec;
  ids: string[];
  fleet: Fleet;
  proxy: LinkProxy | null;
  /** Switches the group's NaN-outputs fault (null: the group has none). */
  nan: { on: boolean } | null;
  /** The group's clock offset while a clock-skew fault lasts (null: the group has none). */
  skew: { ms: number } | null;
  /** The devices' in-memory storage, whose capacity a disk-full fault lowers (null: the group has no such fault and uses the disk). */
  disks: MemoryStorage[] | null;
}

/** Device ids as the fleet names them (fleet.ts): PREFIX-NNN, zero-padded to the widest index. */
export function groupIds(g: GroupSpec): string[] {
  const width = String(g.count - 1).length;
  return Array.from({ length: g.count }, (_, i) => `${g.idPrefix ?? g.name}-${String(i).padStart(width, '0')}`);
}

/** Telemetry windows short enough for a rehearsal of tens of seconds (a group's `agent.telemetry` wins). */
const SIM_AGENT_DEFAULTS: Partial<AgentOptionsInput> = { heartbeatMs: 1_000, telemetry: { ...TELEMETRY_DEFAULTS, windowMs: 1_000, sampleRate: 1 } };

const ENROLL_BATCH = 10_000;

/** Enroll every device through the hub (rotating: a re-run gets fresh secrets); a refusal is SIM_ERR_HUB_REFUSED with the hub's code. */
export async function enrollThroughHub(api: HubApi, ids: string[]): Promise<Map<string, Credential>> {
  const out = new Map<string, Credential>();
  for (let i = 0; i < ids.length; i += ENROLL_BATCH) {
    let r: { credentials: (Credential & { deviceId: string })[] };
    try { r = await api.send('POST', '/v1/enrollments', { devices: ids.slice(i, i + ENROLL_BATCH), rotate: true }); } catch (e) {
      throw simError('SIM_ERR_HUB_REFUSED', `enrolling ${ids.length} devices: ${errorCode(e)} ${(e as Error).message}`);
    }
    for (const c of r.credentials) out.set(c.deviceId, { mqttUsername: c.mqttUsername, mqttPassword: c.mqttPassword });
  }
  return out;
}

/** DIR/ID.json per device, as `fleetcast device enroll --file IDS --out-dir DIR` writes them. */
export function readCredentialDir(dir: string, ids: string[]): Map<string, Credential> {
  const out = new Map<string, Credential>();
  for (const id of ids) {
    try {
      const c = JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8')) as Partial<Credential>;
      if (typeof c.mqttUsername !== 'string' || typeof c.mqttPassword !== 'string') throw new Error('no mqttUsername/mqttPassword');
      out.set(id, { mqttUsername: c.mqttUsername, mqttPassword: c.mqttPassword });
    } catch (e) { throw simError('SIM_ERR_CREDENTIALS', `${join(dir, `${id}.json`)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  }
  return out;
}

/** A runtime whose models answer NaN for every float output while `flag.on` (a device with a broken accelerator or model memory). */
export function nanRuntime(base: ModelRuntime, flag: { on: boolean }): ModelRuntime {
  return {
    name: base.name,
    async load(path, key): Promise<LoadedModel> {
      const m = await base.load(path, key);
      return {
        inputNames: m.inputNames, outputNames: m.outputNames, release: () => m.release(),
        async run(feeds) {
          const out = await m.run(feeds);
          if (!flag.on) return out;
          const bad: Record<string, TensorData> = {};
          for (const [k, t] of Object.entries(out)) bad[k] = t.data instanceof Float32Array || t.data instanceof Float64Array ? { ...t, data: t.data.map(() => NaN) } : t;
          return bad;
        },
      };
    },
  };
}

const LINK_FAULTS = new Set(['network-loss', 'slow-link', 'flapping-link', 'tampered-chunks', 'broker-restart']);

export async function startGroups(o: {
  scenario: ScenarioFile; brokerUrl: string; rootPath: string; dataDir: string;
  credentials: Map<string, Credential> | null;
}): Promise<DeviceGroup[]> {
  const faults = o.scenario.faults ?? [];
  const nodeRuntime = createOrtRuntime({ cache: new SessionCache(), intraOpNumThreads: 1 });
  let webRuntime: Promise<ModelRuntime> | null = null;
  const groups: DeviceGroup[] = [];
  try {
    for (const spec of o.scenario.groups) {
      const hits = (kinds: Set<string> | string) => faults.some((f) => (typeof kinds === 'string' ? f.kind === kinds : kinds.has(f.kind)) && (f.group === undefined || f.group === spec.name));
      const proxy = hits(LINK_FAULTS) ? await startLinkProxy(o.brokerUrl) : null;
      const nan = hits('nan-outputs') ? { on: false } : null;
      const skew = hits('clock-skew') ? { ms: 0 } : null;
      // A real disk cannot be filled for one group without filling it for every process on the machine: memory can.
      const memory = hits('disk-full');
      let runtime = nodeRuntime;
      if (spec.runtime === 'web') runtime = await (webRuntime ??= import('@fleetcast/agent/runtime-web.js').then((m) => m.createWebRuntime()));
      if (nan) runtime = nanRuntime(runtime, nan);
      const ids = groupIds(spec);
      const capabilities = { ...(spec.tags ? { tags: spec.tags } : {}), ...(spec.hardware ? { hardware: spec.hardware } : {}) };
      const fleet = await startFleet({
        brokerUrl: proxy?.url ?? o.brokerUrl, agents: spec.count, rootPath: o.rootPath, dataDir: join(o.dataDir, spec.name),
        idPrefix: spec.idPrefix ?? spec.name, runtime, startConcurrency: 50,
        ...(memory ? { storage: 'memory' as const } : {}),
        ...(skew ? { nowFor: () => () => Date.now() + skew.ms } : {}),
        agentOptions: { ...SIM_AGENT_DEFAULTS, ...(spec.agent as Partial<AgentOptionsInput> | undefined), capabilities },
        ...(o.credentials ? { agentOptionsFor: (_i: number, id: string) => ({ ...o.credentials!.get(id) }) } : {}),
      });
      const disks = memory ? fleet.storages.filter((d): d is MemoryStorage => d instanceof MemoryStorage) : null;
      groups.push({ spec, ids, fleet, proxy, nan, skew, disks });
    }
  } catch (e) {
    await stopGroups(groups);
    throw e;
  }
  return groups;
}

export async function stopGroups(groups: DeviceGroup[]): Promise<void> {
  await Promise.all(groups.map(async (g) => { await g.fleet.stop(); await g.proxy?.close(); }));
}

/**
 * Within `timeoutMs`, every device connected, or the reason none could: a broker refusal of the
 * credentials (AGENT_ERR_BROKER_AUTH on any device) or no connection at all.
 */
export async function waitConnected(groups: DeviceGroup[], timeoutMs: number): Promise<void> {
  const agents = groups.flatMap((g) => g.fleet.agents);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const st = agents.map((a) => a.status());
    const refused = st.find((s) => s.broker?.code === 'AGENT_ERR_BROKER_AUTH');
    if (refused) throw simError('SIM_ERR_BROKER_REFUSED', `${refused.deviceId}: ${refused.broker!.detail}`);
    const up = st.filter((s) => s.connected).length;
    if (up === agents.length) return;
    if (Date.now() > end) {
      if (up > 0) return; // some are up: the run goes on, and the live view and the report show the rest as disconnected
      const why = st.find((s) => s.broker)?.broker;
      throw simError('SIM_ERR_BROKER_UNREACHABLE', `0 of ${agents.length} devices connected in ${timeoutMs} ms${why ? `: ${why.code} ${why.detail}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
