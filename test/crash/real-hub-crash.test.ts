/**
 * Crash recovery on the real system (DESIGN "Test it by killing the real
 * process (SIGKILL) in every state"; Mender's Killed_in_<State>): the real hub
 * in-process with authentication on, each device enrolled with its own
 * credential file, the COMPILED agent (dist/) as a child process, SIGKILLed at
 * every kill point of agent/recovery.ts's RECOVERY_TABLE — phase entries and
 * the points inside a phase (mid-transfer, mid-unpack, pointer just switched).
 * The rows are iterated as data: a phase or kill point with no scenario here
 * fails the first test.
 *
 * Each kill is checked to have landed (the "paused <point>" marker and the
 * agent's own state.json), and after the restart: it serves at once the model
 * it persisted as active, ends on the model the recovery table promises,
 * predicts with it, the hub's registry (GET /v1/devices/:id) shows the same,
 * and every chunk it asked the broker for again was missing or failed its hash
 * in the staging file it left behind (nothing verified is fetched again).
 */
import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECOVERY_TABLE } from '../../agent/recovery.js';
import { PHASES, type Phase } from '../../protocol/messages.js';
import { http } from '../helpers/agent-fixture.js';
import { killAll } from '../helpers/agent-process.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { installedOn, killAt, pausedAt, restartAndSettle } from '../helpers/real-crash.js';
import { expectServing, INPUT, RealFleet, status, stopAgent, type Published } from '../helpers/real-fleet.js';

let fleet: RealFleet;
let v1: Published;
let v2: Published;
let bad: Published;
let gone: Published;

beforeAll(async () => {
  fleet = await RealFleet.start({ chunkExpectWaitMs: 0 });
  // Small chunks and a padded model: a few dozen chunks, so a transfer can be caught half done.
  const big = { padFloats: 6000 };
  v1 = await fleet.publish(1, { chunkSize: 1024, model: { seed: 1, ...big } });
  v2 = await fleet.publish(2, { chunkSize: 1024, model: { seed: 2, ...big } });
  // Seed-41 weights overflow float32 on a large input: it passes its golden cases and fails under live traffic.
  bad = await fleet.publish(3, { model: { seed: 41 } });
  gone = await fleet.publish(4, { chunkSize: 1024, model: { seed: 4, ...big } });
}, 120_000);

afterAll(async () => {
  killAll();
  await fleet?.close();
  cleanupTempDirs();
});

/** One scenario per kill point; the keys must cover RECOVERY_TABLE's kill points exactly. */
const SCENARIOS: Record<string, (deviceId: string) => Promise<void>> = {
  async idle(deviceId) {
    // Killed before any assignment: the next boot is a clean one that installs when assigned.
    const dataDir = tempDir(`fleetcast-real-${deviceId}-`);
    const a = fleet.spawn(deviceId, dataDir);
    await a.port();
    await waitFor(() => fleet.device(deviceId), `${deviceId} registered`, 60_000, 100);
    const k = await killAt(fleet, a, null, 'idle', v1);
    await fleet.deploy(v1, [deviceId]);
    const { agent } = await restartAndSettle(fleet, k, v1, 'committed');
    expect((await stopAgent(agent)).code).toBe(0);
  },
  ...Object.fromEntries(['fetching', 'fetching:mid-transfer', 'verifying', 'staging', 'staging:mid-unpack', 'swapping', 'swapping:switched', 'probation', 'committed'].map((point) => [point, async (deviceId: string) => {
    const dataDir = await installedOn(fleet, deviceId, v1);
    await fleet.deploy(v2, [deviceId]);
    // A long window holds the agent in probation for the probation kill; the others commit after a short one.
    const a = fleet.spawn(deviceId, dataDir, { FLEETCAST_TEST_PAUSE_AT: point, FLEETCAST_AGENT_PROBATION_MS: point === 'probation' ? '600000' : '300', FLEETCAST_AGENT_PROBATION_MIN_REQUESTS: '1000' });
    const phase = point.split(':')[0] as Phase;
    if (phase === 'swapping') {
      // Paused mid-swap the agent still answers: before the pointer moves with v1, right after it with v2.
      await pausedAt(a, point);
      const r = await http(await a.port(), 'POST', '/v1/predict', INPUT);
      expect(r.json.model?.bundleId).toBe(point === 'swapping:switched' ? v2.bundleId : v1.bundleId);
    }
    const k = await killAt(fleet, a, point, phase, v2);
    if (point === 'fetching:mid-transfer') {
      // Some chunks staged, some not.
      expect(k.missing.length).toBeGreaterThan(0);
      expect(k.missing.length).toBeLessThan(v2.chunkHashes.length);
    }
    if (point === 'staging:mid-unpack') {
      // Decompression under way: the model folder is still the partial one.
      expect(existsSync(join(dataDir, 'models', `${v2.bundleId}.partial`))).toBe(true);
      expect(existsSync(join(dataDir, 'models', v2.bundleId))).toBe(false);
    }
    // Until the pointer is persisted the old model is the active one; from probation on, the new one.
    expect(k.active).toBe(['probation', 'committed'].includes(phase) ? v2.bundleId : v1.bundleId);
    const { agent, s } = await restartAndSettle(fleet, k, v2, 'committed');
    expect(s.previous?.bundleId).toBe(v1.bundleId);
    expect((await stopAgent(agent)).code).toBe(0);
  }])),
  async 'rolled-back'(deviceId) {
    const dataDir = await installedOn(fleet, deviceId, v1);
    await fleet.deploy(bad, [deviceId]);
    const a = fleet.spawn(deviceId, dataDir, { FLEETCAST_TEST_PAUSE_AT: 'rolled-back', FLEETCAST_AGENT_PROBATION_MS: '600000', FLEETCAST_AGENT_PROBATION_MIN_REQUESTS: '3' });
    const port = await a.port();
    await waitFor(async () => (await status(port)).phase === 'probation', 'probation', 60_000);
    const overflow = JSON.stringify({ inputs: { x: [[-3e38, -3e38, -3e38, -3e38]], category: [[1]] } });
    for (let i = 0; i < 3; i++) await http(port, 'POST', '/v1/predict', overflow);
    // The hub hears of the self-rollback before the kill.
    await waitFor(async () => (await fleet.device(deviceId))?.events.find((e: any) => e.kind === 'rolled-back' && e.code === 'AGENT_ERR_PROBATION_ERRORS' && e.bundleId === bad.bundleId), 'rolled-back event in the registry', 60_000, 100);
    const k = await killAt(fleet, a, 'rolled-back', 'rolled-back', bad);
    expect(k.active).toBe(v1.bundleId);
    const { agent, s } = await restartAndSettle(fleet, k, v1, 'rolled-back');
    expect(s.lastError.code).toBe('AGENT_ERR_PROBATION_ERRORS');
    expect((await fleet.device(deviceId)).state.lastError.code).toBe('AGENT_ERR_PROBATION_ERRORS');
    expect((await stopAgent(agent)).code).toBe(0);
  },
  async failed(deviceId) {
    // Fetch give-up: the hub has lost the bundle's blob, so it answers no chunk request.
    const dataDir = await installedOn(fleet, deviceId, v1);
    await fleet.deploy(gone, [deviceId]);
    const blob = fleet.hub.store.blobPath(gone.bundleId);
    renameSync(blob, `${blob}.away`);
    const a = fleet.spawn(deviceId, dataDir, { FLEETCAST_TEST_PAUSE_AT: 'failed', FLEETCAST_AGENT_CHUNK_TIMEOUT_MS: '200', FLEETCAST_AGENT_MAX_FETCH_ATTEMPTS: '2', FLEETCAST_AGENT_MAX_BACKOFF_MS: '200' });
    const port = await a.port();
    await pausedAt(a, 'failed');
    // Gave up with its code, still serving the old model, and the hub's registry says so.
    const st = await status(port);
    expect(st).toMatchObject({ phase: 'failed', active: { bundleId: v1.bundleId }, lastError: { code: 'AGENT_ERR_FETCH_TIMEOUT', bundleId: gone.bundleId } });
    expect((await http(port, 'POST', '/v1/predict', INPUT)).json.model.bundleId).toBe(v1.bundleId);
    const reg = await fleet.registrySays(deviceId, v1.bundleId, 'failed');
    expect(reg.state.lastError.code).toBe('AGENT_ERR_FETCH_TIMEOUT');
    const k = await killAt(fleet, a, 'failed', 'failed', gone);
    // The hub serves again: a transient failure resumes when the retained assignment is delivered at boot.
    renameSync(`${blob}.away`, blob);
    const { agent } = await restartAndSettle(fleet, k, gone, 'committed');
    expect((await stopAgent(agent)).code).toBe(0);
  },
};

const KILL_POINTS = (Object.entries(RECOVERY_TABLE) as [Phase, (typeof RECOVERY_TABLE)[Phase]][]).flatMap(([phase, rule]) => rule.killPoints.map((point) => ({ phase, point })));

describe('the compiled agent on the real hub (auth on), SIGKILLed at every kill point of the recovery table', () => {
  it('every phase has a row, every row a kill point, every kill point a scenario', () => {
    expect(Object.keys(RECOVERY_TABLE).sort()).toEqual([...PHASES].sort());
    for (const phase of PHASES) expect(RECOVERY_TABLE[phase].killPoints.length, phase).toBeGreaterThan(0);
    expect(Object.keys(SCENARIOS).sort()).toEqual(KILL_POINTS.map((k) => k.point).sort());
  });

  // The rows whose boots count towards the crash loop: killed there on every boot, the agent gives the bundle up.
  for (const phase of PHASES.filter((p) => RECOVERY_TABLE[p].countsRecovery)) {
    it.concurrent(`Killed_in_${phase} on every boot: past maxInstallRecoveries the bundle is given up with AGENT_ERR_CRASH_LOOP and v1 serves`, async () => {
      const deviceId = `real-loop-${phase}`;
      const dataDir = await installedOn(fleet, deviceId, v1);
      await fleet.deploy(v2, [deviceId]);
      const env = { FLEETCAST_TEST_PAUSE_AT: phase, FLEETCAST_AGENT_MAX_INSTALL_RECOVERIES: '1', FLEETCAST_AGENT_PROBATION_MS: '600000', FLEETCAST_AGENT_PROBATION_MIN_REQUESTS: '1000' };
      // Boot 1 reaches the phase; boot 2 recovers into it again (a resumed probation does not pass the
      // pause point, so it is caught by its status); boot 3 is past the limit.
      for (let boot = 0; boot < 2; boot++) {
        const a = fleet.spawn(deviceId, dataDir, env);
        if (phase === 'probation' && boot > 0) {
          const port = await a.port();
          await waitFor(async () => (await status(port)).phase === 'probation' || undefined, 'probation again', 60_000);
          await killAt(fleet, a, null, phase, v2);
        } else await killAt(fleet, a, phase, phase, v2);
      }
      const a = fleet.spawn(deviceId, dataDir, env);
      const port = await a.port();
      const wantPhase = phase === 'probation' ? 'rolled-back' : 'failed';
      const s = await expectServing(port, v1.bundleId, wantPhase);
      expect(s.lastError).toMatchObject({ code: 'AGENT_ERR_CRASH_LOOP', bundleId: v2.bundleId });
      expect(a.io.stderr).not.toContain(`paused ${phase}`);
      const reg = await fleet.registrySays(deviceId, v1.bundleId, wantPhase);
      expect(reg.state.lastError.code).toBe('AGENT_ERR_CRASH_LOOP');
      await waitFor(async () => (await fleet.device(deviceId))?.events.some((e: any) => e.code === 'AGENT_ERR_CRASH_LOOP' && e.bundleId === v2.bundleId), 'crash-loop event in the registry', 60_000, 100);
      expect((await stopAgent(a)).code).toBe(0);
    }, 180_000);
  }

  for (const { point } of KILL_POINTS) {
    const scenario = SCENARIOS[point];
    if (!scenario) continue;
    // Devices are independent: their kills run side by side against the one hub.
    it.concurrent(`Killed_in_${point.replace(':', '_')}`, async () => {
      await scenario(`real-${point.replace(':', '-')}`);
    }, 180_000);
  }
});
