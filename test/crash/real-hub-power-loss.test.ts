/**
 * Power loss on the real system: the compiled agent, enrolled on the real hub
 * (authentication on), is SIGKILLed and then its files are damaged the way a
 * power cut leaves them (a slot cut short, a zero-length state file, torn and
 * cut-off chunk ranges in the staging file) — the rows of agent/recovery.ts
 * that are not install phases. After the restart it must serve a verified
 * model at once, say what it found to the hub's registry (GET /v1/devices/:id),
 * and get back to the assigned bundle, fetching again only what was damaged.
 */
import { closeSync, openSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll } from '../helpers/agent-process.js';
import { cleanupTempDirs, waitFor } from '../helpers/env.js';
import { installedOn, killAt, missingChunks, restartAndSettle } from '../helpers/real-crash.js';
import { expectServing, RealFleet, status, stopAgent, type Published } from '../helpers/real-fleet.js';

let fleet: RealFleet;
let v1: Published;
let v2: Published;

beforeAll(async () => {
  fleet = await RealFleet.start({ chunkExpectWaitMs: 0 });
  const big = { padFloats: 6000 };
  v1 = await fleet.publish(1, { chunkSize: 1024, model: { seed: 31, ...big } });
  v2 = await fleet.publish(2, { chunkSize: 1024, model: { seed: 32, ...big } });
}, 120_000);

afterAll(async () => {
  killAll();
  await fleet?.close();
  cleanupTempDirs();
});

/** The registry holds an event from the device with this code (and bundle, if given). */
function registryEvent(deviceId: string, code: string, bundleId?: string) {
  return waitFor(async () => (await fleet.device(deviceId))?.events.find((e: any) => e.code === code && (!bundleId || e.bundleId === bundleId)), `${code} event of ${deviceId} in the registry`, 60_000, 100);
}

/** v1 then v2 installed and committed through the hub; v1 is kept as the previous slot. */
async function onV2(deviceId: string): Promise<string> {
  const dataDir = await installedOn(fleet, deviceId, v1);
  return installedOn(fleet, deviceId, v2, dataDir);
}

describe('the compiled agent on the real hub after a power cut', () => {
  it.concurrent('a truncated active slot: serves the previous slot at once, tells the hub the slot failed its boot check, then reinstalls the assigned bundle from the hub', async () => {
    const deviceId = 'real-power-slot';
    const dataDir = await onV2(deviceId);
    const a = fleet.spawn(deviceId, dataDir);
    await a.port();
    const k = await killAt(fleet, a, null, 'committed', v2);
    const model = join(dataDir, 'models', v2.bundleId, 'model.onnx');
    truncateSync(model, Math.floor(statSync(model).size / 2));
    // The restart serves v1 (the only sound slot), then fetches v2 again and commits it.
    const { agent } = await restartAndSettle(fleet, { ...k, active: v1.bundleId, missing: missingChunks(dataDir, v2) }, v2, 'committed');
    // The boot check's own code (the cut file no longer has the signed raw hash) reaches the registry.
    const ev = await registryEvent(deviceId, 'AGENT_ERR_PAYLOAD_HASH', v2.bundleId);
    expect(ev.kind).toBe('stage-failed');
    expect((await stopAgent(agent)).code).toBe(0);
  }, 180_000);

  it.concurrent('a zero-length state file: the rollback check serves the newest verified model at once, from disk, fetching nothing, and the hub hears AGENT_ERR_STATE_CORRUPT', async () => {
    const deviceId = 'real-power-state';
    const dataDir = await onV2(deviceId);
    const a = fleet.spawn(deviceId, dataDir);
    await a.port();
    const k = await killAt(fleet, a, null, 'committed', v2);
    writeFileSync(join(dataDir, 'state.json'), '');
    const agent = fleet.spawn(deviceId, dataDir);
    const port = await agent.port();
    // Serving v2 from the first status on: the pointers were lost, the verified model on disk was not.
    expect((await status(port)).active?.bundleId).toBe(v2.bundleId);
    const s = await expectServing(port, v2.bundleId, 'committed');
    expect(s.lastError?.code).toBe('AGENT_ERR_STATE_CORRUPT');
    expect((fleet.chunkRequests.get(deviceId) ?? []).slice(k.requestsBefore)).toEqual([]);
    // The boot counter that seeds report seqs was in the lost file: the hub must still take this boot's
    // reports (not drop them as replays of earlier seqs) and hear why the pointers were rebuilt.
    await fleet.registrySays(deviceId, v2.bundleId, 'committed', k.registrySeq);
    await registryEvent(deviceId, 'AGENT_ERR_STATE_CORRUPT');
    expect((await stopAgent(agent)).code).toBe(0);
  }, 180_000);

  it.concurrent('torn and cut-off chunk ranges of the staging file, after a kill mid-transfer, are fetched again, and only those', async () => {
    const deviceId = 'real-power-torn';
    const dataDir = await installedOn(fleet, deviceId, v1);
    await fleet.deploy(v2, [deviceId]);
    const a = fleet.spawn(deviceId, dataDir, { FLEETCAST_TEST_PAUSE_AT: 'fetching:mid-transfer' });
    const k = await killAt(fleet, a, 'fetching:mid-transfer', 'fetching', v2);
    const file = join(dataDir, 'staging', v2.bundleId, 'payload.zst');
    const { chunkSize } = v2;
    const staged = v2.chunkHashes.map((_, i) => i).filter((i) => !k.missing.includes(i));
    expect(staged.length).toBeGreaterThan(2);
    // A torn write: half of the first staged chunk never reached the disk.
    const fd = openSync(file, 'r+');
    try { writeSync(fd, Buffer.alloc(chunkSize >> 1), 0, chunkSize >> 1, staged[0] * chunkSize); } finally { closeSync(fd); }
    // A cut-off file: it ends inside the last staged chunk.
    const last = staged.at(-1)!;
    if (readFileSync(file).length > last * chunkSize + 10) truncateSync(file, last * chunkSize + 10);
    const missing = missingChunks(dataDir, v2);
    expect(missing).toContain(staged[0]);
    expect(missing).toContain(last);
    expect(missing.length).toBeLessThan(v2.chunkHashes.length);
    const { agent } = await restartAndSettle(fleet, { ...k, missing }, v2, 'committed');
    expect((await stopAgent(agent)).code).toBe(0);
  }, 180_000);
});
