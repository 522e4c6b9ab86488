/**
 * The real hub and the compiled agent, for the suites that claim something
 * about the system (test/crash/real-hub-*.test.ts): hub/hub.ts in-process with
 * authentication ON (no insecureDemo), each device enrolled with its own MQTT
 * credential written to a 0600 --config file, `agent/dist/fleetcast-agent.js`
 * spawned as a child process (dist/ must be current: the suite does not build
 * it), bundles published and deployed through the hub's REST API with the
 * admin token, and the registry read back from GET /v1/devices/:id.
 *
 * The embedded broker is observed (every chunk request a device publishes)
 * and, per device, can drop or corrupt a chunk on its way to that device
 * (aedes' authorizeForward, which the hub does not use): a man in the middle
 * inside the real broker, after the real ACL let the hub's publish through.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MlpOptions } from '../../bundle-build/onnx-build.js';
import type { Hub } from '../../hub/hub.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import type { HubOptionsInput } from '../../hub/options.js';
import { decodeChunkRequest, decodeStateReport } from '../../protocol/messages.js';
import { parseTopic, type ParsedTopic } from '../../protocol/topics.js';
import { http } from './agent-fixture.js';
import { spawnAgent, type AgentProcess } from './agent-process.js';
import { makeKeys, tempDir, waitFor } from './env.js';
import { adminToken, api, makeBundle, startTestHub } from './hub-harness.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
export const AGENT_ENTRY = join(repo, 'agent/dist/fleetcast-agent.js');

/** A valid input for the models built here (4 floats and a category). */
export const INPUT = JSON.stringify({ inputs: { x: [[1, 2, 3, 4]], category: [[1]] } });

export interface Published { bundleId: string; version: number; path: string; chunkHashes: string[]; chunkSize: number }
export type ChunkTamper = (index: number, payload: Buffer) => Buffer | null | undefined;

/** parseTopic throws on topics that are not fleetcast's ($SYS/…). */
function topicOf(topic: string): ParsedTopic | null {
  try { return parseTopic(topic); } catch { return null; }
}

export type WireEvent = { request: number[] } | { chunk: number; bundleId: string; intact: boolean; dropped: boolean } | { progress: number; bundleId: string };

export interface RealAgent extends AgentProcess { deviceId: string; dataDir: string; port(): Promise<number> }

export class RealFleet {
  readonly keys = makeKeys();
  hub!: Hub;
  token!: string;
  /** Chunk lists each device asked for, in arrival order, as the broker saw them. */
  readonly chunkRequests = new Map<string, number[][]>();
  /**
   * Per device, in the broker's order: chunk requests and progress reports received from it,
   * chunks forwarded to it (intact, corrupted or dropped). A client's packets are handled one
   * at a time in the order it sent them, and it receives forwards in the order logged here.
   */
  readonly wire = new Map<string, WireEvent[]>();
  readonly #tamper = new Map<string, ChunkTamper>();
  readonly #creds = new Map<string, string>();

  static async start(over: Partial<HubOptionsInput> = {}): Promise<RealFleet> {
    const f = new RealFleet();
    // Authentication on: anonymous clients are refused, every device needs its enrolled credential.
    f.hub = await startTestHub(f.keys, { insecureDemo: false, ...over });
    f.token = adminToken(f.hub);
    const aedes = f.hub.broker!.aedes;
    aedes.on('publish', (packet) => {
      const t = topicOf(packet.topic);
      if (t?.kind === 'device' && t.channel === 'state') {
        try {
          const rep = decodeStateReport(packet.payload as Buffer);
          if (rep.progress && rep.target) f.#log(t.deviceId, { progress: rep.progress.have, bundleId: rep.target.bundleId });
        } catch { /* the hub refuses it */ }
        return;
      }
      if (t?.kind !== 'device' || t.channel !== 'chunk-req') return;
      try {
        const req = decodeChunkRequest(packet.payload as Buffer);
        f.chunkRequests.set(t.deviceId, [...(f.chunkRequests.get(t.deviceId) ?? []), req.chunks]);
        f.#log(t.deviceId, { request: req.chunks });
      } catch { /* not ours to judge: the hub refuses it */ }
    });
    // Wrapped, not replaced: whatever the hub's broker security decides about a forward still holds.
    const hubForward = aedes.authorizeForward.bind(aedes);
    aedes.authorizeForward = (client, original) => {
      const packet = hubForward(client, original);
      const t = packet && client && packet.topic.includes('/chunk/') ? topicOf(packet.topic) : null;
      if (!packet || !client || t?.kind !== 'chunk') return packet;
      const out = f.#tamper.get(client.id)?.(t.index, packet.payload as Buffer);
      f.#log(client.id, { chunk: t.index, bundleId: t.bundleId, intact: out === undefined, dropped: out === null });
      if (out === null) return null;
      return out ? { ...packet, payload: out } as typeof packet : packet;
    };
    return f;
  }

  #log(deviceId: string, e: WireEvent): void {
    let l = this.wire.get(deviceId);
    if (!l) this.wire.set(deviceId, (l = []));
    l.push(e);
  }

  /** Drop (return null) or replace (return bytes) chunks on their way to one device; undefined passes them. */
  tamper(deviceId: string, fn: ChunkTamper | null): void {
    if (fn) this.#tamper.set(deviceId, fn); else this.#tamper.delete(deviceId);
  }

  /** Enroll the device (as `fleetcast device enroll` does) and write its agent config file, mode 0600. */
  enroll(deviceId: string): string {
    let file = this.#creds.get(deviceId);
    if (file) return file;
    const c = new MqttCredentials(this.hub.store.db).enrollDevice(deviceId);
    file = join(tempDir('fleetcast-cred-'), `${deviceId}.json`);
    writeFileSync(file, JSON.stringify({ mqttUsername: c.username, mqttPassword: c.password }), { mode: 0o600 });
    this.#creds.set(deviceId, file);
    return file;
  }

  /** The compiled agent (or another install of it: `entry`) for `deviceId` on `dataDir`, enrolled, with FLEETCAST_AGENT_* overrides. */
  spawn(deviceId: string, dataDir: string, env: Record<string, string> = {}, entry = AGENT_ENTRY): RealAgent {
    const p = spawnAgent(entry, ['--broker', this.hub.mqttUrl, '--device-id', deviceId, '--data', dataDir, '--root', this.keys.rootPath, '--listen', '127.0.0.1:0', '--config', this.enroll(deviceId), '--quiet'], {
      FLEETCAST_AGENT_HEARTBEAT_MS: '0', FLEETCAST_AGENT_RECONNECT_PERIOD_MS: '100', FLEETCAST_AGENT_CHUNK_TIMEOUT_MS: '2000',
      ...env,
    });
    let port: Promise<number> | undefined;
    return {
      ...p, deviceId, dataDir,
      port: () => (port ??= waitFor(() => /predict API http:\/\/127\.0\.0\.1:(\d+)/.exec(p.io.stdout)?.[1], `${deviceId} listen line (stderr: ${p.io.stderr.slice(-300)})`, 60_000).then(Number)),
    };
  }

  async publish(version: number, o: { model?: MlpOptions; chunkSize?: number; name?: string } = {}): Promise<Published> {
    const b = await makeBundle([this.keys.keys.release], { name: o.name ?? 'churn', version, model: { categorical: true, seed: version, ...o.model }, ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}) });
    const r = await api<{ bundleId: string }>(this.hub, 'POST', '/v1/bundles', new Uint8Array(readFileSync(b.path)), this.token);
    if (r.status !== 201) throw new Error(`publish v${version}: ${r.status} ${JSON.stringify(r.body)}`);
    return { bundleId: r.body.bundleId, version, path: b.path, chunkHashes: b.manifest.payload.chunkHashes, chunkSize: b.manifest.payload.chunkSize };
  }

  async deploy(b: Published, devices: string[], name = 'churn'): Promise<void> {
    // The scenarios assign a device before its agent first starts (and is enrolled): the retained assignment
    // waiting for it is part of what they test, so the ids are not yet known to the hub on purpose.
    const r = await api(this.hub, 'POST', '/v1/deployments', { name, version: b.version, devices, allowUnknown: true }, this.token);
    if (r.status !== 200) throw new Error(`deploy v${b.version}: ${r.status} ${JSON.stringify(r.body)}`);
  }

  /** The registry's view of one device (GET /v1/devices/:id with the admin token), or null if unknown. */
  async device(deviceId: string): Promise<any> {
    const r = await api<any>(this.hub, 'GET', `/v1/devices/${deviceId}`, undefined, this.token);
    return r.status === 200 ? r.body : null;
  }

  /** Wait until the registry's last state report, newer than seq `after`, says `bundleId` is active in `phase`. */
  async registrySays(deviceId: string, bundleId: string, phase: string, after = -1, timeoutMs = 60_000): Promise<any> {
    return waitFor(async () => {
      const d = await this.device(deviceId);
      return d?.state?.seq > after && d.state.active?.bundleId === bundleId && d.state.phase === phase ? d : undefined;
    }, `registry: ${deviceId} on ${bundleId.slice(0, 12)}… in ${phase} (report after seq ${after})`, timeoutMs, 100);
  }

  async close(): Promise<void> { await this.hub?.close(); }
}

export async function status(port: number): Promise<any> {
  return (await http(port, 'GET', '/v1/status')).json;
}

/** Wait until the agent serves `bundleId` in `phase`, then check a prediction is answered by that model. */
export async function expectServing(port: number, bundleId: string, phase: string): Promise<any> {
  const s = await waitFor(async () => {
    const st = await status(port);
    return st.active?.bundleId === bundleId && st.phase === phase ? st : undefined;
  }, `serving ${bundleId.slice(0, 12)}… in ${phase}`, 60_000, 50);
  const r = await http(port, 'POST', '/v1/predict', INPUT);
  if (r.status !== 200 || r.json.model.bundleId !== bundleId) throw new Error(`predict: ${r.status} ${JSON.stringify(r.json)}`);
  return s;
}

/** The agent's own persisted state (state.json), read after it was killed. */
export function persisted(dataDir: string): any {
  return JSON.parse(readFileSync(join(dataDir, 'state.json'), 'utf8'));
}

export async function stopAgent(a: AgentProcess, signal: NodeJS.Signals = 'SIGTERM') {
  a.child.kill(signal);
  return a.exit;
}
