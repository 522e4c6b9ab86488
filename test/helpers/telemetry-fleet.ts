/**
 * A fleet of telemetry collectors for the drift suites: each device has its
 * own real MQTT connection and a real TelemetryCollector; its requests go
 * through the agent's real input validation and a real onnxruntime session
 * (shared, as the simulator shares one), and its data comes from a simulator
 * scenario. Only the clock is virtual, so "a window" is exact and no test
 * sleeps: advance the clock, flush every collector, wait for the hub to have
 * ingested every report.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectMqtt, type BrokerClient } from '../../agent/broker-client.js';
import { createOrtRuntime, type LoadedModel, type TensorData } from '../../agent/runtime.js';
import { TelemetryCollector, type TelemetryOptions } from '../../agent/telemetry/collector.js';
import { compileValidator } from '../../agent/validate.js';
import { buildBundle } from '../../bundle-build/build.js';
import { buildMlp, type MlpOptions } from '../../bundle-build/onnx-build.js';
import type { Row } from '../../bundle-build/reference.js';
import type { Manifest } from '../../protocol/manifest.js';
import type { KeyPair } from '../../signing/ed25519.js';
import type { Hub } from '../../hub/hub.js';
import { scenarioGenerator, type Scenario, type ScenarioGenerator } from '../../simulator/scenarios.js';
import { tempDir, waitFor } from './env.js';
import { api } from './hub-harness.js';

export interface Clock { now: () => number; advance(ms: number): void }
export function virtualClock(start = Date.now()): Clock {
  let t = start;
  return { now: () => t, advance(ms) { t += ms; } };
}

/** Reference rows drawn from a scenario's distributions (no shifts), named like the features. */
export function referenceRows(features: string[], n: number, seed: number, scenario: Scenario = {}): Row[] {
  const g = scenarioGenerator({ features: scenario.features }, seed);
  return Array.from({ length: n }, () => Object.fromEntries(features.map((f) => [f, g.value('reference', f, 0)])));
}

export interface PublishedModel { bundleId: string; manifest: Manifest; model: LoadedModel }

/** Build, sign (with a reference), publish, and load for inference one version of a model. */
export async function publishModel(hub: Hub, release: KeyPair[], o: { name: string; version: number; mlp: MlpOptions; reference: Row[] }): Promise<PublishedModel> {
  const dir = tempDir('fleetcast-drift-');
  const bytes = buildMlp(o.mlp);
  const modelPath = join(dir, 'model.onnx');
  writeFileSync(modelPath, bytes);
  const b = await buildBundle({ model: bytes, name: o.name, version: o.version, releaseKeys: release, out: join(dir, `${o.name}-${o.version}.fcb`), reference: o.reference });
  const { readFileSync } = await import('node:fs');
  const res = await api(hub, 'POST', '/v1/bundles', new Uint8Array(readFileSync(b.path)));
  if (res.status >= 300) throw new Error(`publish failed: ${JSON.stringify(res.body)}`);
  const model = await createOrtRuntime({ intraOpNumThreads: 1 }).load(modelPath, b.manifest.payload.rawSha256);
  return { bundleId: b.bundleId, manifest: b.manifest, model };
}

export interface Device { id: string; client: BrokerClient; collector: TelemetryCollector; model: PublishedModel | null }

export interface CollectorFleet {
  devices: Device[];
  /** One window: every device serves `requests` requests of `rows` rows, then the clock advances and every collector reports. */
  window(o: { requests: number; rows: number; windowMs: number }): Promise<void>;
  close(): Promise<void>;
}

export async function startCollectorFleet(hub: Hub, o: { ids: string[]; clock: Clock; scenario: ScenarioGenerator; options?: Partial<TelemetryOptions> }): Promise<CollectorFleet> {
  const devices: Device[] = [];
  for (let i = 0; i < o.ids.length; i += 50) {
    devices.push(...await Promise.all(o.ids.slice(i, i + 50).map(async (id) => {
      const client = connectMqtt({ url: hub.mqttUrl, clientId: id, reconnectPeriodMs: 200, connectTimeoutMs: 10_000 });
      await waitFor(() => client.connected, `${id} to connect`);
      const collector = new TelemetryCollector({ deviceId: id, client, now: o.clock.now, options: { windowMs: 60_000, sampleRate: 1, ...o.options } });
      return { id, client, collector, model: null };
    })));
  }
  const validators = new Map<string, ReturnType<typeof compileValidator>>();
  let expected = hub.telemetry.ingest.stats.accepted;
  return {
    devices,
    async window(w) {
      for (const d of devices) {
        if (!d.model) continue;
        const m = d.model;
        let validate = validators.get(m.bundleId);
        if (!validate) validators.set(m.bundleId, (validate = compileValidator(m.manifest.inputs, { maxBatch: 1024 })));
        for (let k = 0; k < w.requests; k++) {
          const body = o.scenario.body(d.id, m.manifest.inputs, o.clock.now(), w.rows);
          let feeds: Record<string, TensorData>;
          try { feeds = validate(body.inputs).feeds; } catch (e) { d.collector.failure({ bundleId: m.bundleId, manifest: m.manifest }, (e as { code: string }).code); continue; }
          const out = await m.model.run(feeds);
          d.collector.observe({ bundleId: m.bundleId, manifest: m.manifest }, feeds, out, 1 + (k % 5));
        }
      }
      o.clock.advance(w.windowMs);
      for (const d of devices) {
        const before = d.collector.status().sent;
        d.collector.flush();
        if (d.model) expected += 1;
        void before;
      }
      const want = expected;
      await waitFor(() => hub.telemetry.ingest.stats.accepted >= want, `hub to ingest ${want} reports (has ${hub.telemetry.ingest.stats.accepted})`, 30_000);
    },
    async close() {
      await Promise.all(devices.map((d) => d.client.end()));
    },
  };
}
