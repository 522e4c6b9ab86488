/**
 * A test-side hub double for the agent's tests only: it signs assignments with
 * the hub key from makeKeys() and answers chunk requests by publishing the
 * requested chunks of real bundles built with buildBundle. It is a seam fake
 * (the real hub is tested with the real agent elsewhere), with knobs to drop
 * a chunk once, serve corrupted chunks, and sign anything the tests need.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { buildBundle, type BuildBundleOptions } from '../../bundle-build/build.js';
import { buildMlp, type MlpOptions } from '../../bundle-build/onnx-build.js';
import { readBundleBuffer } from '../../bundles/read.js';
import { bundleIdOf } from '../../bundles/verify.js';
import { PAYLOAD_TYPES, type Envelope } from '../../protocol/envelope.js';
import type { Manifest } from '../../protocol/manifest.js';
import { decodeChunkRequest, decodeDeviceEvent, decodeStateReport, encode, type Assignment, type ChunkRequest, type DeviceEvent, type StateReport } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import type { KeyPair } from '../../signing/ed25519.js';
import { signEnvelope } from '../../signing/envelope.js';
import type { InitKeysResult } from '../../signing/keys.js';
import { tempDir } from './env.js';

export interface TestBundle {
  bundleId: string;
  manifest: Manifest;
  envelope: Envelope;
  /** The compressed payload the hub serves chunks from. */
  payload: Buffer;
  /** The raw ONNX model bytes. */
  model: Uint8Array;
}

/** `smokeCheck: false` builds a bundle the build would refuse, to test the device's own refusal. */
export async function makeBundle(keys: InitKeysResult, o: { name?: string; version: number; mlp?: MlpOptions; model?: Uint8Array; chunkSize?: number; golden?: Manifest['golden']; smokeCheck?: boolean } & Pick<BuildBundleOptions, 'examples' | 'smokeDims' | 'schema'>): Promise<TestBundle> {
  const model = o.model ?? buildMlp({ categorical: true, ...o.mlp });
  const out = join(tempDir('fleetcast-agent-bundle-'), 'bundle.tar');
  const b = await buildBundle({
    model, name: o.name ?? 'mlp', version: o.version, releaseKeys: [keys.keys.release], out, ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}), ...(o.golden ? { golden: o.golden } : {}),
    smokeCheck: o.smokeCheck, examples: o.examples, smokeDims: o.smokeDims, schema: o.schema,
  });
  const read = readBundleBuffer(readFileSync(b.path));
  return { bundleId: b.bundleId, manifest: read.manifest, envelope: read.envelope, payload: read.payload, model };
}

/** Re-sign a changed copy of a bundle's manifest (the payload stays unless given). */
export function resign(b: TestBundle, keys: readonly KeyPair[], change: (m: Manifest) => void, payload?: Buffer): TestBundle {
  const m = structuredClone(b.manifest);
  change(m);
  const bytes = Buffer.from(JSON.stringify(m));
  return { ...b, manifest: m, envelope: signEnvelope(PAYLOAD_TYPES.manifest, bytes, keys), bundleId: bundleIdOf(bytes), payload: payload ?? b.payload };
}

export interface AssignOverrides extends Partial<Assignment> {
  /** Keys that sign the assignment (default: the hub key). */
  signWith?: KeyPair[];
  /** Replace the manifest envelope sent along. */
  manifestEnvelope?: Envelope;
  /** Change the signed assignment envelope after signing. */
  tamper?: (env: Envelope) => Envelope;
}

/** The bytes of an assign message signed by `hubKey` (unless `o.signWith`), as TestHub.assign publishes them. */
export function assignMessageBytes(hubKey: KeyPair, deviceId: string, b: TestBundle, counter: number, o: AssignOverrides = {}): Buffer {
  const now = Date.now();
  const { signWith, manifestEnvelope, tamper, ...fields } = o;
  const payload: Assignment = {
    type: 'fleetcast.assignment/v1', deviceId, bundleId: b.bundleId, name: b.manifest.name, version: b.manifest.version,
    rolloutId: null, ring: null, counter, issuedAt: now, expiresAt: now + 600_000, ...fields,
  };
  let env = signEnvelope(PAYLOAD_TYPES.assignment, encode(payload), signWith ?? [hubKey]);
  if (tamper) env = tamper(env);
  return encode({ v: 1, assignment: env, manifest: manifestEnvelope ?? b.envelope });
}

export class TestHub {
  readonly keys: InitKeysResult;
  readonly requests: ChunkRequest[] = [];
  readonly events: DeviceEvent[] = [];
  readonly states: StateReport[] = [];
  readonly bundles = new Map<string, TestBundle>();
  /** Chunk indices to skip the first time they are requested, per bundle id. */
  readonly dropOnce = new Map<string, Set<number>>();
  /** Serve these chunks with a flipped byte, per bundle id. */
  readonly corrupt = new Map<string, Set<number>>();
  published = 0;
  /** Messages on device topics that did not decode: an agent bug, so stop() fails the suite with them. */
  readonly undecodable: { topic: string; error: string }[] = [];
  readonly #client: MqttClient;

  private constructor(client: MqttClient, keys: InitKeysResult) {
    this.#client = client;
    this.keys = keys;
  }

  static async start(brokerUrl: string, keys: InitKeysResult): Promise<TestHub> {
    const client = await mqtt.connectAsync(brokerUrl, { clientId: `test-hub-${process.pid}-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 200 });
    const hub = new TestHub(client, keys);
    client.on('message', (topic, payload) => hub.#onMessage(topic, payload));
    await client.subscribeAsync([topics.allDevices('chunk-req'), topics.allDevices('event'), topics.allDevices('state')], { qos: 1 });
    return hub;
  }

  add(b: TestBundle): TestBundle {
    this.bundles.set(b.bundleId, b);
    return b;
  }

  /** Sign and publish (retained, QoS 1) an assignment of `b` to `deviceId`. */
  async assign(deviceId: string, b: TestBundle, counter: number, o: AssignOverrides = {}): Promise<void> {
    await this.publishRaw(topics.assign(deviceId), this.assignMessage(deviceId, b, counter, o), true);
  }

  /** The bytes of an assign message, as `assign` publishes them. */
  assignMessage(deviceId: string, b: TestBundle, counter: number, o: AssignOverrides = {}): Buffer {
    return assignMessageBytes(this.keys.keys.hub, deviceId, b, counter, o);
  }

  async publishRaw(topic: string, bytes: Buffer, retain = false): Promise<void> {
    await this.#client.publishAsync(topic, bytes, { qos: 1, retain });
  }

  requestsFor(bundleId: string): number[][] {
    return this.requests.filter((r) => r.bundleId === bundleId).map((r) => r.chunks);
  }

  eventCodes(deviceId: string): string[] {
    return this.events.filter((e) => e.deviceId === deviceId && e.code).map((e) => e.code!);
  }

  async stop(): Promise<void> {
    await this.#client.endAsync(true);
    if (this.undecodable.length > 0) {
      throw new Error(`the test hub received ${this.undecodable.length} message(s) that do not decode (an agent sent a malformed message): ${this.undecodable.slice(0, 5).map((u) => `${u.topic}: ${u.error}`).join('; ')}`);
    }
  }

  #onMessage(topic: string, payload: Buffer): void {
    const kind = topic.split('/').pop();
    try {
      if (kind === 'chunk-req') this.#serve(decodeChunkRequest(payload));
      else if (kind === 'event') this.events.push(decodeDeviceEvent(payload));
      else if (kind === 'state' && payload.length > 0) this.states.push(decodeStateReport(payload));
    } catch (e) {
      // A malformed message is the agent's bug: recorded, and stop() fails the suite with it.
      this.undecodable.push({ topic, error: (e as Error).message });
    }
  }

  #serve(req: ChunkRequest): void {
    this.requests.push(req);
    const b = this.bundles.get(req.bundleId);
    if (!b) return;
    const drop = this.dropOnce.get(req.bundleId);
    const bad = this.corrupt.get(req.bundleId);
    const size = b.manifest.payload.chunkSize;
    for (const i of req.chunks) {
      if (i * size >= b.payload.length && !(i === 0 && b.payload.length === 0)) continue;
      if (drop?.delete(i)) continue;
      const chunk = Buffer.from(b.payload.subarray(i * size, Math.min(b.payload.length, (i + 1) * size)));
      if (bad?.has(i)) chunk[0] ^= 0xff;
      this.published++;
      void this.#client.publishAsync(topics.chunk(req.bundleId, i), chunk, { qos: 1 }).catch(() => {});
    }
  }
}
