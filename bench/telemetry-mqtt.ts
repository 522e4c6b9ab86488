/**
 * Hub telemetry ingest over MQTT, end to end: a real hub (embedded aedes,
 * SQLite file, a published 32-feature bundle with a reference profile) and
 * D device connections in a worker thread sending binary reports at QoS 1 as
 * fast as they are acknowledged. Ours: reports/s the hub's ingest accepted,
 * from the first publish to the last report merged. Baseline, same run, same
 * broker, same publishers: a bare subscriber in the hub's process that only
 * counts the same messages on a topic the hub does not read (the broker's own
 * ceiling for these messages). Goal (issue #5): ≥ 20,000 reports/s.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import mqtt from 'mqtt';
import { TelemetryWindow } from '@fleetcast/agent/telemetry/window.js';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { HubClient } from '@fleetcast/cli/hub-client.js';
import { readAdminToken } from '@fleetcast/hub/auth/tokens.js';
import { startHub } from '@fleetcast/hub/hub.js';
import { encodeTelemetryBinary } from '@fleetcast/protocol/telemetry-binary.js';
import { compilePlan } from '@fleetcast/protocol/telemetry-plan.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { scenarioGenerator } from '@fleetcast/simulator/scenarios.js';
import { benchDir } from './dirs.js';
import { nowMs, type BenchResult } from './lib.js';

const F = 32;
const DEVICES = 100;
const ROUNDS = 250;
const WINDOW = 4;

interface Run { ours: number; bare: number; accepted: number; refused: number; bytes: number }

/** One hub (embedded broker) with `workers` ingest workers: the bare-subscriber pass, then the ingest pass. */
async function runOnce(dir: string, keysDir: string, bundlePath: string, b: { bundleId: string; manifest: Parameters<typeof compilePlan>[1] }, workers: number): Promise<Run> {
  const gen = scenarioGenerator({}, 6);
  const names = Array.from({ length: F }, (_, i) => `x[${i}]`);
  // BENCH_BROKER=mqtt://HOST:PORT: an external broker (e.g. mosquitto with allow_anonymous, max_queued_messages 0) instead of the embedded one.
  const external = process.env.BENCH_BROKER;
  const hub = await startHub({ dataDir: join(dir, `hub-${workers}`), keysDir, mqttPort: 0, httpPort: 0, logLevel: 'silent', insecureDemo: true, ...(external ? { brokerUrl: external, mqttClientId: `fleetcast-hub-bench-${workers}` } : {}), telemetry: { driftIntervalMs: 0, ingestWorkers: workers } });
  let worker: Worker | undefined;
  try {
    await new HubClient(hub.httpUrl, readAdminToken(hub.options.dataDir)).publish(bundlePath);
    // One window's report per device: 200 sampled requests, as the agent's window makes it.
    const plan = compilePlan(b.bundleId, b.manifest);
    const now = Date.now();
    const devices = Array.from({ length: DEVICES }, (_, d) => {
      const id = `ing-${d}`;
      const w = new TelemetryWindow(plan, now - 60_000);
      for (let i = 0; i < 200; i++) {
        const x = Float32Array.from(names.map((n) => gen.value(id, n, 0) as number));
        w.request(1 + (i % 9) / 4, true, { x: { type: 'float32', dims: [1, F], data: x } }, { y: { type: 'float32', dims: [1, 2], data: Float32Array.of(x[0], x[1]) } }, 0);
      }
      const template = encodeTelemetryBinary({ v: 1, deviceId: id, seq: 2 ** 49, to: now, part: 0, parts: 1, sampleRate: 1, dropped: 0, ...w.body() });
      // The seq field follows the magic, the format, v and the length-prefixed device id.
      return { id, template, seqAt: 3 + 1 + Buffer.byteLength(id) };
    });
    const bytes = devices.reduce((t, d) => t + d.template.length, 0) / DEVICES;
    worker = new Worker(new URL('./telemetry-mqtt-worker.js', import.meta.url), { workerData: { url: hub.mqttUrl, devices, rounds: ROUNDS, window: WINDOW } });
    const w = worker;
    const next = <T>() => new Promise<T>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    await next();
    const total = DEVICES * ROUNDS;

    // Baseline: the broker delivering the same messages to a subscriber that only counts them.
    const sub = await mqtt.connectAsync(hub.mqttUrl, { clientId: 'bench-counter', protocolVersion: 4 });
    let counted = 0;
    let lastAt = 0;
    sub.on('message', () => { counted++; lastAt = nowMs(); });
    await sub.subscribeAsync('bench/+/+/telemetry', { qos: 1 });
    const b0 = nowMs();
    const bSent = next<{ sentMs: number }>();
    w.postMessage({ prefix: 'bench/dev', firstSeq: 0 });
    await bSent;
    while (counted < total) await new Promise((r) => setTimeout(r, 5));
    const bareMs = lastAt - b0;
    await sub.endAsync();

    // Ours: the hub ingesting them (decode, checks, merge, batched SQLite writes), until every report is stored.
    const t0 = nowMs();
    const sent = next<{ sentMs: number }>();
    w.postMessage({ prefix: 'fc/v1/dev', firstSeq: 0 });
    await sent;
    const handled = () => (hub.link.stats.handled.telemetry ?? 0) + Object.values(hub.link.stats.rejected).reduce((t, x) => t + x, 0);
    const deadline = nowMs() + 120_000;
    while (handled() < total && nowMs() < deadline) await new Promise((r) => setTimeout(r, 2));
    await hub.telemetry.settle();
    const oursMs = nowMs() - t0;
    const accepted = hub.telemetry.pool ? hub.telemetry.pool.stats.accepted : hub.telemetry.ingest.stats.accepted;
    const refused = Object.values(hub.link.stats.rejected).reduce((t, x) => t + x, 0);
    w.postMessage({ end: true });
    await next();
    return { ours: accepted / (oursMs / 1000), bare: total / (bareMs / 1000), accepted, refused, bytes };
  } finally {
    await worker?.terminate();
    await hub.close();
  }
}

export async function benchTelemetryMqtt(): Promise<BenchResult> {
  const dir = benchDir('telemetry-mqtt');
  const keys = initKeys(join(dir, 'keys'));
  writeFileSync(join(dir, 'model.onnx'), buildMlp({ features: F, hidden: 16, seed: 5 }));
  const gen = scenarioGenerator({}, 6);
  const names = Array.from({ length: F }, (_, i) => `x[${i}]`);
  const reference = Array.from({ length: 4000 }, () => Object.fromEntries(names.map((n) => [n, gen.value('ref', n, 0)])));
  const b = await buildBundle({ model: join(dir, 'model.onnx'), name: 'ingest', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'b.fcb'), reference });
  const inline = await runOnce(dir, join(dir, 'keys'), b.path, b, 0);
  const pooled = await runOnce(dir, join(dir, 'keys'), b.path, b, 2);
  const bare = (inline.bare + pooled.bare) / 2;
  return {
    name: `hub telemetry ingest over MQTT: ${DEVICES} device connections (worker thread), ${F}-feature binary reports (${Math.round(inline.bytes)} bytes), QoS 1, ${process.env.BENCH_BROKER ? `external broker ${process.env.BENCH_BROKER}` : 'embedded aedes'}, vs a bare counting subscriber on the same broker`,
    ours: { 'reports/s, hub thread': inline.ours, 'reports/s, 2 ingest workers': pooled.ours, 'reports refused': inline.refused + pooled.refused, 'MB/s, 2 workers': (pooled.ours * pooled.bytes) / 1e6 },
    baseline: { 'reports/s': bare, 'MB/s': (bare * inline.bytes) / 1e6 },
    ratios: [
      { name: 'bare broker / ingest, hub thread', value: bare / inline.ours },
      { name: 'bare broker / ingest, 2 workers', value: bare / pooled.ours },
      { name: '20,000 / ours over MQTT, 2 workers (goal ≤ 1)', value: 20_000 / pooled.ours, goal: 1 },
    ],
    notes: [
      `${DEVICES * ROUNDS} reports per pass (${DEVICES} devices × ${ROUNDS} windows), at most ${WINDOW} unacknowledged publishes per connection; ours runs until every report is merged and stored`,
      `${process.env.BENCH_BROKER ? 'the broker is another process; the hub process runs' : 'the hub process runs the embedded broker,'} its MQTT client, the ingest and SQLite; the publishers run in a worker thread of the same process, so on 2 cores they all compete; no per-publish ACL check (insecure demo)`,
      `bare broker passes: ${Math.round(inline.bare)} and ${Math.round(pooled.bare)} reports/s`,
    ],
  };
}
