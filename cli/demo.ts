/**
 * `npm run demo`: the whole flow on embedded defaults, in a temporary folder.
 * Keys → two model versions built in code → signed bundles → hub with its
 * embedded broker → 50 simulated agents → publish and deploy v1 → predictions
 * → publish and deploy v2 under load → a short table. Exits non-zero if any
 * prediction failed or the rollout did not complete.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { startHub } from '@fleetcast/hub/hub.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { startFleet } from '@fleetcast/simulator/fleet.js';
import { DEMO_TELEMETRY, demoDrift, demoDriftReport, demoReference } from './demo-drift.js';
import { TELEMETRY_DEFAULTS } from '@fleetcast/agent/telemetry/collector.js';
import { HubClient } from './hub-client.js';
import { demoAudit } from './demo-audit.js';
import { demoRollout } from './demo-rollout.js';
import { readAdminToken } from '@fleetcast/hub/auth/tokens.js';

export interface DemoOptions { agents?: number; keep?: boolean; out?: NodeJS.WritableStream }

export interface DemoResult {
  agents: number;
  versions: Record<string, number>;
  predictions: number;
  failed: number;
  failuresByCode: Record<string, number>;
  rolloutMs: Record<string, number>;
  totalMs: number;
}

export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const out = o.out ?? process.stdout;
  const say = (s: string) => out.write(`${s}\n`);
  const t0 = Date.now();
  const n = o.agents ?? 50;
  const dir = mkdtempSync(join(tmpdir(), 'fleetcast-demo-'));
  say(`fleetcast demo in ${dir}`);
  const keys = initKeys(join(dir, 'keys'));
  say('  keys: root.json, root.key, release.key, hub.key');

  const bundles: Awaited<ReturnType<typeof buildBundle>>[] = [];
  for (const version of [1, 2]) {
    const model = join(dir, `model-v${version}.onnx`);
    writeFileSync(model, buildMlp({ features: 8, categorical: true, hidden: 32, seed: version }));
    const b = await buildBundle({
      model, name: 'demo-mlp', version, releaseKeys: [keys.keys.release], out: join(dir, `demo-mlp-${version}.fcb`),
      schema: { inputs: { x: { min: -10, max: 10 }, category: { min: 0, max: 9 } } },
      reference: demoReference(),
    });
    bundles.push(b);
    say(`  built demo-mlp@${version}: ${b.bundleId.slice(0, 16)}… (${b.manifest.payload.compressedLength} bytes zstd, signed by release key)`);
  }

  const hub = await startHub({ dataDir: join(dir, 'hub'), keysDir: join(dir, 'keys'), mqttPort: 0, httpPort: 0, logLevel: 'warn', insecureDemo: true });
  say(`  hub: API ${hub.httpUrl}, embedded broker ${hub.mqttUrl} (insecure demo: anonymous MQTT clients allowed, no ACL; a real hub authenticates every device)`);
  const api = new HubClient(hub.httpUrl, readAdminToken(hub.options.dataDir));
  const fleet = await startFleet({ brokerUrl: hub.mqttUrl, agents: n, rootPath: keys.rootPath, dataDir: join(dir, 'fleet'), agentOptions: { heartbeatMs: 1_000, telemetry: { ...TELEMETRY_DEFAULTS, ...DEMO_TELEMETRY } } });
  const drift = demoDrift();
  let v2Since = 0;
  try {
    await until(async () => (await api.devices()).devices.length >= n, 30_000, 'agents to register');
    say(`  fleet: ${n} simulated agents registered with the hub`);

    const rolloutMs: Record<string, number> = {};
    let drive: ReturnType<typeof fleet.drive> | null = null;
    for (const b of bundles) {
      const key = `${b.manifest.name}@${b.manifest.version}`;
      await api.publish(b.path);
      const start = Date.now();
      if (b === bundles[1]) { v2Since = start; drift.shift(); }
      if (b === bundles[0]) {
        const d = await api.deploy({ name: b.manifest.name, version: b.manifest.version, all: true });
        say(`  deploy ${key}: ${d.devices.length} signed assignments`);
      } else {
        // Issue #3: a new version goes out as a staged rollout whose gates read the agents' health (predictions keep running).
        await demoRollout(api, b.manifest.name, b.manifest.version, say);
      }
      await fleet.waitForVersion(b.manifest.name, b.manifest.version, 60_000);
      rolloutMs[key] = Date.now() - start;
      say(`  ${key} on all ${n} agents in ${rolloutMs[key]} ms`);
      // Predictions start once v1 serves everywhere and keep running across the v2 swap.
      drive ??= fleet.drive({ concurrency: 16, inputsFor: drift.inputsFor });
      await new Promise((r) => setTimeout(r, 1000));
    }
    const stats = await drive!.stop();
    const versions = fleet.versions();
    const res: DemoResult = {
      agents: n, versions, predictions: stats.ok + stats.failed, failed: stats.failed, failuresByCode: stats.failuresByCode, rolloutMs, totalMs: Date.now() - t0,
    };
    say('');
    say('  ┌──────────────────────────────┬────────────┐');
    for (const [k, v] of Object.entries(versions)) say(`  │ agents on ${k.padEnd(19)}│ ${String(v).padStart(10)} │`);
    say(`  │ predictions served           │ ${String(stats.ok).padStart(10)} │`);
    for (const [k, v] of Object.entries(stats.byVersion)) say(`  │   by ${k.padEnd(24)}│ ${String(v).padStart(10)} │`);
    say(`  │ failed predictions           │ ${String(stats.failed).padStart(10)} │`);
    for (const [k, v] of Object.entries(rolloutMs)) say(`  │ full rollout ${k.padEnd(16)}│ ${`${v} ms`.padStart(10)} │`);
    say(`  │ demo wall time               │ ${`${res.totalMs} ms`.padStart(10)} │`);
    say('  └──────────────────────────────┴────────────┘');
    if (stats.failed) say(`  failures by code: ${JSON.stringify(stats.failuresByCode)}`);
    say('');
    say(`  drift since the v2 rollout began (the devices' x[2] narrowed and category 9 appeared; \`fleetcast drift report ${bundles[1].manifest.name}@2\` prints the same):`);
    say((await demoDriftReport(hub, bundles[1].bundleId, v2Since)).replace(/^/gm, '  ').trimEnd());
    say('');
    // Issue #6: what an auditor sees, offline, from the hub's transparency log.
    say((await demoAudit(hub, keys.rootPath, dir)).text.replace(/^/gm, '  '));
    return res;
  } finally {
    await fleet.stop();
    await hub.close();
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  }
}

async function until(fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
