/**
 * Many real agents in one process: the agent code itself (createAgent), each
 * with its own MQTT connection, data folder and install state machine. What the
 * agents can share safely they share: one trust root, one onnxruntime
 * session per distinct model through a refcounted session cache, the
 * decompression of identical verified payloads (shared-unpack.ts), the
 * hashing of byte-identical chunks (shared-verify.ts) and the signature checks
 * of identical manifests and log checkpoints (shared-manifests.ts,
 * shared-checkpoints.ts). Each agent still
 * receives every chunk over its own connection and writes its own staging file.
 *
 * With `storage: 'memory'` each agent keeps its data folder in memory
 * (agent/memory-storage.ts) behind the interface its disk uses, and blocks
 * byte-identical across the fleet (staged chunks, model files) are kept once:
 * how 10,000 devices fit in one process (bench/sim-scale.ts measures it).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createAgent, readRoot, type Agent } from '@fleetcast/agent/agent.js';
import { diskStorage } from '@fleetcast/agent/disk-storage.js';
import { MemoryPool, MemoryStorage } from '@fleetcast/agent/memory-storage.js';
import type { AgentOptionsInput } from '@fleetcast/agent/options.js';
import type { AgentStorage } from '@fleetcast/agent/storage.js';
import { createOrtRuntime, SessionCache, type ModelRuntime } from '@fleetcast/agent/runtime.js';
import { errorCode } from '@fleetcast/protocol/errors.js';
import { makeInputGenerator, type InputSpecLite } from './inputs.js';
import { sharedUnpacker } from './shared-unpack.js';
import { sharedCheckpointVerify } from './shared-checkpoints.js';
import { sharedManifestVerify } from './shared-manifests.js';
import { sharedPayloads, type SharedPayloads } from './shared-verify.js';

export interface FleetOptions {
  brokerUrl: string;
  agents: number;
  rootPath: string;
  dataDir: string;
  idPrefix?: string;
  /** Digits of the device number in ids (default: enough for `agents`); set it when the fleet will grow(). */
  idWidth?: number;
  /** Extra agent options for every agent (chunk timeouts, capabilities, …). */
  agentOptions?: Partial<AgentOptionsInput>;
  /** Per-agent capabilities, e.g. to give some devices another hardware class. */
  capabilitiesFor?: (index: number) => Record<string, unknown>;
  /** Per-agent options over agentOptions, e.g. each device's own enrolled MQTT credential (a secure hub). */
  agentOptionsFor?: (index: number, deviceId: string) => Partial<AgentOptionsInput>;
  /** The model runtime every agent shares (default onnxruntime-node with a shared session cache). */
  runtime?: ModelRuntime;
  /** Per-agent clock (default Date.now), e.g. a device whose clock is skewed. */
  nowFor?: (index: number) => () => number;
  /** Where each agent keeps its data folder: on disk under dataDir (default), or in memory. */
  storage?: 'disk' | 'memory';
  /** Bytes each agent may store when storage is 'memory' (default unbounded); MemoryStorage.capacityBytes changes it later. */
  capacityBytes?: number;
  /** Start agents this many at a time (connection storms are a test of their own). */
  startConcurrency?: number;
  /** Decompress each distinct payload once for the whole fleet (default true; see shared-unpack.ts). */
  shareUnpack?: boolean;
  /** Hash byte-identical chunks and verify identical manifests and log checkpoints once for the whole fleet (default true; see shared-verify.ts, shared-manifests.ts, shared-checkpoints.ts). */
  shareVerify?: boolean;
  /**
   * Hand each agent's MQTT client a received chunk that equals one another agent received as that same buffer,
   * compared in place and never copied (default true with shareVerify; agent/payload-matcher.ts).
   */
  shareReceive?: boolean;
}

export interface DriveStats {
  ok: number;
  failed: number;
  failuresByCode: Record<string, number>;
  /** Successful predictions per model "name@version". */
  byVersion: Record<string, number>;
  skippedNoModel: number;
}

export interface Fleet {
  readonly agents: readonly Agent[];
  readonly ids: readonly string[];
  /** Each agent's storage, in the order of `agents` (MemoryStorage when storage is 'memory'). */
  readonly storages: readonly AgentStorage[];
  /** How the fleet's shared check took received chunks (shared-verify.ts; undefined with shareVerify false). */
  readonly payloadStats?: SharedPayloads['stats'];
  /** Start `count` more agents (ids continue the numbering); they join versions(), waitForVersion(), drive() and stop(). */
  grow(count: number): Promise<void>;
  /** Agents per active "name@version" ("none" when nothing is installed). */
  versions(): Record<string, number>;
  /** Resolves when every agent serves `name@version` (or rejects after timeoutMs). */
  waitForVersion(name: string, version: number, timeoutMs?: number): Promise<void>;
  /** Drive predictions round-robin over agents with a model until `stop()` is called on the returned handle. */
  drive(opts?: { concurrency?: number; seed?: number; inputsFor?: InputsFor }): DriveHandle;
  stop(): Promise<void>;
}

/** A predict body for one device (simulator/scenarios.ts builds these from per-device distributions and shifts). */
export type InputsFor = (deviceId: string, inputs: readonly InputSpecLite[]) => { inputs: Record<string, unknown> };

export interface DriveHandle { readonly stats: DriveStats; stop(): Promise<DriveStats> }

export async function startFleet(o: FleetOptions): Promise<Fleet> {
  // One root for every agent, read the way an agent reads its own.
  const root = await readRoot(o.rootPath);
  const runtime = o.runtime ?? createOrtRuntime({ cache: new SessionCache(), intraOpNumThreads: 1 });
  const unpack = o.shareUnpack === false ? undefined : sharedUnpacker(join(o.dataDir, '.shared-models'));
  const payloads = o.shareVerify === false ? undefined : sharedPayloads();
  const payloadCheck = payloads?.check;
  const payloadMatcher = o.shareReceive === false ? undefined : payloads?.matcher;
  const verifyManifest = o.shareVerify === false ? undefined : sharedManifestVerify();
  const verifyCheckpoint = o.shareVerify === false ? undefined : sharedCheckpointVerify();
  const prefix = o.idPrefix ?? 'sim';
  const width = o.idWidth ?? String(o.agents - 1).length;
  const memory = o.storage === 'memory';
  // One pool per fleet: what its devices store byte-identically is kept once.
  const pool = memory ? new MemoryPool(undefined, payloadMatcher ? { shared: payloads!.referenceOf } : {}) : undefined;
  const ids: string[] = [];
  const agents: Agent[] = [];
  const storages: AgentStorage[] = [];
  // What each agent serves, from its state reports (one on every phase change, after the active
  // pointer moved). waitForVersion polls these and calls status() only to confirm: status() of
  // every agent every 25 ms would take a good part of the CPU the benchmarks measure.
  const label = (m: { name: string; version: number } | null | undefined) => (m ? `${m.name}@${m.version}` : 'none');
  const reported: string[] = [];
  const step = o.startConcurrency ?? 50;
  const grow = async (count: number) => {
    const from = agents.length;
    for (let i = from; i < from + count; i++) {
      const deviceId = `${prefix}-${String(i).padStart(width, '0')}`;
      const dataDir = join(o.dataDir, deviceId);
      if (!memory) mkdirSync(dataDir, { recursive: true });
      const storage = memory ? new MemoryStorage({ root: dataDir, pool, ...(o.capacityBytes !== undefined ? { capacityBytes: o.capacityBytes } : {}) }) : diskStorage;
      const a = createAgent({
        ...o.agentOptions,
        ...o.agentOptionsFor?.(i, deviceId),
        deviceId, dataDir, rootPath: o.rootPath, brokerUrl: o.brokerUrl, listen: null,
        capabilities: { ...(o.agentOptions?.capabilities ?? {}), ...(o.capabilitiesFor?.(i) ?? {}) },
      }, { runtime, root, storage, ...(o.nowFor ? { now: o.nowFor(i) } : {}), ...(unpack ? { unpack } : {}), ...(payloadCheck ? { payloadCheck } : {}), ...(payloadMatcher ? { payloadMatcher } : {}), ...(verifyManifest ? { verifyManifest } : {}), ...(verifyCheckpoint ? { verifyCheckpoint } : {}) });
      ids.push(deviceId);
      agents.push(a);
      storages.push(storage);
      reported.push('none');
      a.on('state', (r) => { reported[i] = label(r.active); });
    }
    for (let i = from; i < agents.length; i += step) await Promise.all(agents.slice(i, Math.min(i + step, agents.length)).map((a) => a.start()));
  };
  await grow(o.agents);

  const versions = () => {
    const v: Record<string, number> = {};
    for (const a of agents) {
      const act = a.status().active;
      const k = act ? `${act.name}@${act.version}` : 'none';
      v[k] = (v[k] ?? 0) + 1;
    }
    return v;
  };

  return {
    agents, ids, storages, versions, grow,
    ...(payloads ? { payloadStats: payloads.stats } : {}),
    async waitForVersion(name, version, timeoutMs = 60_000) {
      const end = Date.now() + timeoutMs;
      const key = `${name}@${version}`;
      while (!(reported.every((k) => k === key) && (versions()[key] ?? 0) === agents.length)) {
        if (Date.now() > end) throw new Error(`timed out: ${JSON.stringify(versions())} after ${timeoutMs} ms waiting for ${key}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    drive(d = {}) {
      const gen = makeInputGenerator(d.seed ?? 1);
      const stats: DriveStats = { ok: 0, failed: 0, failuresByCode: {}, byVersion: {}, skippedNoModel: 0 };
      let running = true;
      let next = 0;
      const worker = async () => {
        while (running) {
          const a = agents[next++ % agents.length];
          const act = a.status().active;
          if (!act) { stats.skippedNoModel++; await new Promise((r) => setImmediate(r)); continue; }
          try {
            const res = await a.predict(d.inputsFor ? d.inputsFor(a.options.deviceId, act.inputs) : gen(act.inputs));
            stats.ok++;
            const k = `${res.model.name}@${res.model.version}`;
            stats.byVersion[k] = (stats.byVersion[k] ?? 0) + 1;
          } catch (e) {
            stats.failed++;
            const c = errorCode(e);
            stats.failuresByCode[c] = (stats.failuresByCode[c] ?? 0) + 1;
          }
        }
      };
      const workers = Array.from({ length: d.concurrency ?? 8 }, worker);
      return { stats, async stop() { running = false; await Promise.all(workers); return stats; } };
    },
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
    },
  };
}
