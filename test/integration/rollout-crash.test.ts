/**
 * Issue #3, "Durability": Killed_in_awaiting_promotion and Killed_in_assigning.
 * The compiled hub (`node cli/dist/fleetcast.js hub`) runs as a child process
 * against mosquitto (agents stay connected while the hub is down); it is
 * SIGKILLed mid-rollout and started again on the same data folder. The rollout
 * resumes where it was, and every device is sent the new bundle exactly once
 * (its counter grows by exactly one), none is lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../cli/hub-client.js';
import { startFleet, type Fleet } from '../../simulator/fleet.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { buildCli } from '../helpers/build-cli.js';
import { makeBundle } from '../helpers/hub-harness.js';
import { hasMosquitto, startMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';

afterAll(cleanupTempDirs);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'cli/dist/fleetcast.js');

interface Status { state: string; ring: string; awaitingPromotion: boolean; rings: { counts: Record<string, number> }[] }

describe.skipIf(!hasMosquitto)('a hub SIGKILLed mid-rollout resumes it', () => {
  const keys = makeKeys();
  const data = tempDir('fleetcast-crash-hub-');
  let broker: Mosquitto;
  let hub: ChildProcess | undefined;
  let httpPort = 0;
  let fleet: Fleet;
  let api: HubClient;

  /** The hub's stderr, where a test pause point announces itself. */
  let hubErr = '';

  /** Start the compiled hub; `pauseAt` sets its test pause point (hub/test-pause.ts), e.g. 'assigning:broad'. */
  async function startHubProc(pauseAt?: string): Promise<void> {
    let out = '';
    let err = '';
    const env = { ...process.env, FLEETCAST_HUB_TEST_PAUSE_AT: pauseAt ?? '' };
    const p = spawn(process.execPath, [CLI, 'hub', '--data', data, '--keys', keys.dir, '--broker', broker.url, '--http-port', String(httpPort), '--log-level', 'warn'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
    p.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    p.stderr!.on('data', (b: Buffer) => { err += b.toString(); hubErr = err; });
    hub = p;
    await waitFor(() => {
      if (p.exitCode !== null) throw new Error(`hub exited ${p.exitCode}: ${err}`);
      return /api http/.test(out);
    }, 'the hub to start', 30_000);
  }

  async function killHub(): Promise<void> {
    const p = hub!;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  const status = () => api.rollout<Status>(rolloutId);
  let rolloutId = '';

  beforeAll(async () => {
    await buildCli(ROOT);
    expect(existsSync(CLI)).toBe(true);
    broker = await startMosquitto();
    httpPort = await freePort();
    await startHubProc();
    api = new HubClient(`http://127.0.0.1:${httpPort}`, readFileSync(join(data, 'admin.token'), 'utf8').trim());
    fleet = await startFleet({ brokerUrl: broker.url, agents: 30, rootPath: join(keys.dir, 'root.json'), dataDir: tempDir('fleetcast-crash-fleet-'), agentOptions: { heartbeatMs: 1_000, chunkTimeoutMs: 500 } });
  }, 180_000);

  afterAll(async () => {
    await fleet?.stop();
    if (hub && hub.exitCode === null) await killHub();
    await broker?.stop();
  });

  it('Killed_in_awaiting_promotion and Killed_in_assigning: same state after restart, one assignment per device', async () => {
    for (const v of [1, 2]) await api.publish((await makeBundle([keys.keys.release], { version: v, model: { seed: v } })).path);
    await waitFor(async () => (await api.devices()).devices.length === 30, 'devices registered', 20_000);
    await api.deploy({ name: 'churn', version: 1, all: true });
    await fleet.waitForVersion('churn', 1, 30_000);
    const before = new Map((await api.devices()).devices.map((d) => [d.id, d.assignment!.counter]));
    const v2 = (await api.bundles()).bundles.find((b) => b.version === 2)!.bundleId;

    const drive = fleet.drive({ concurrency: 4 });
    try {
      const spec = { rings: [{ name: 'canary', percent: 10 }, { name: 'broad', percent: 100 }], gates: { minRequests: 10, soak: '0s', maxLatencyRatio: 1000 } };
      rolloutId = (await api.startRollout<{ id: string }>({ name: 'churn', version: 2, spec })).id;
      await waitFor(async () => (await status()).awaitingPromotion, 'canary gates passed (manual promotion)', 30_000);
      const s1 = await status();

      await killHub();
      // Restarted with a pause point: once promoted, it stops with the broad ring persisted as `assigning`.
      await startHubProc('assigning:broad');
      const s2 = await status();
      expect({ state: s2.state, ring: s2.ring, awaiting: s2.awaitingPromotion, counts: s2.rings.map((r) => r.counts) })
        .toEqual({ state: s1.state, ring: s1.ring, awaiting: true, counts: s1.rings.map((r) => r.counts) });

      // Promote; the hub persists the broad ring's devices as `assigning` and pauses before issuing
      // anything: killed there (Killed_in_assigning), it must settle them and assign each exactly once.
      await api.rolloutAction(rolloutId, 'promote', 'crash test');
      await waitFor(() => hubErr.includes('paused assigning:broad'), 'the hub to pause with the broad ring assigning', 30_000);
      const s3 = await status();
      expect(s3.ring).toBe('broad');
      expect(s3.rings[1].counts.pending).toBeGreaterThan(0);
      await killHub();
      await startHubProc();
      await waitFor(async () => (await status()).state === 'completed', 'the rollout to complete after the restart', 60_000)
        .catch(async (e: unknown) => { throw new Error(`${(e as Error).message}: ${JSON.stringify(await status())} ${JSON.stringify(await api.rolloutHistory(rolloutId))}`); });
      await fleet.waitForVersion('churn', 2, 30_000);
    } finally {
      const s = await drive.stop();
      expect(s.failed).toBe(0);
    }
    // Exactly one new assignment per device: its counter grew by one, and it names v2.
    const after = (await api.devices()).devices;
    expect(after).toHaveLength(30);
    for (const d of after) {
      expect(d.assignment!.bundleId).toBe(v2);
      expect(d.assignment!.counter).toBe(before.get(d.id)! + 1);
    }
    for (const a of fleet.agents) expect(a.status().counter).toBe(before.get(a.options.deviceId)! + 1);
    const h = await api.rolloutHistory(rolloutId);
    expect(h.decisions.map((d) => d.kind)).toEqual(['start', 'promote', 'complete']);
  }, 240_000);
});
