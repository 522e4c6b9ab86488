/**
 * Kill-and-restart steps shared by the real-hub crash suites (test/crash/real-hub-*.test.ts):
 * where the agent stopped (marker and state.json), what its staging file still holds, and
 * what a restarted agent must do: serve at once, settle on the promised model, tell the
 * registry, and ask again only for chunks that were missing or corrupt.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Phase } from '../../protocol/messages.js';
import { http } from './agent-fixture.js';
import { tempDir, waitFor } from './env.js';
import { expectServing, INPUT, persisted, status, stopAgent, type Published, type RealAgent, type RealFleet } from './real-fleet.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Chunk indices whose bytes in the staging file do not match the signed hash (all, with no staging file). */
export function missingChunks(dataDir: string, b: Published): number[] {
  const file = join(dataDir, 'staging', b.bundleId, 'payload.zst');
  const staged = existsSync(file) ? readFileSync(file) : Buffer.alloc(0);
  return b.chunkHashes.map((h, i) => (sha(staged.subarray(i * b.chunkSize, (i + 1) * b.chunkSize)) === h ? -1 : i)).filter((i) => i >= 0);
}

export function pausedAt(a: RealAgent, point: string): Promise<true> {
  return waitFor(() => a.io.stderr.includes(`paused ${point}\n`) || undefined, `${a.deviceId} paused at ${point} (stderr: ${a.io.stderr.slice(-400)})`, 60_000, 50);
}

/** A device that installed `b` through the hub and stopped cleanly; returns its data folder. */
export async function installedOn(fleet: RealFleet, deviceId: string, b: Published, dataDir = tempDir(`fleetcast-real-${deviceId}-`)): Promise<string> {
  await fleet.deploy(b, [deviceId]);
  const a = fleet.spawn(deviceId, dataDir, { FLEETCAST_AGENT_PROBATION_MS: '300', FLEETCAST_AGENT_PROBATION_MIN_REQUESTS: '1000' });
  await expectServing(await a.port(), b.bundleId, 'committed');
  expect((await stopAgent(a)).code).toBe(0);
  return dataDir;
}

/** Where a kill left the device: its persisted active model, the chunks its staging file lacks, what the hub had heard. */
export interface Kill { deviceId: string; dataDir: string; target: Published; missing: number[]; requestsBefore: number; active: string | null; registrySeq: number }

/** SIGKILL at the marker (or at once, with none), and check from state.json that the agent was in `phase`. */
export async function killAt(fleet: RealFleet, a: RealAgent, point: string | null, phase: Phase, target: Published): Promise<Kill> {
  if (point) await pausedAt(a, point);
  expect((await stopAgent(a, 'SIGKILL')).signal).toBe('SIGKILL');
  const st = existsSync(join(a.dataDir, 'state.json')) ? persisted(a.dataDir) : {};
  expect(st.install?.phase ?? 'idle').toBe(phase);
  const registrySeq = (await fleet.device(a.deviceId))?.state?.seq ?? -1;
  return { deviceId: a.deviceId, dataDir: a.dataDir, target, missing: missingChunks(a.dataDir, target), requestsBefore: fleet.chunkRequests.get(a.deviceId)?.length ?? 0, active: st.active?.bundleId ?? null, registrySeq };
}

/** Restart: it serves what it persisted as active at once, then ends on `want` in `phase`, and the registry agrees. */
export async function restartAndSettle(fleet: RealFleet, k: Kill, want: Published, phase: string, env: Record<string, string> = {}): Promise<{ agent: RealAgent; port: number; s: any }> {
  const agent = fleet.spawn(k.deviceId, k.dataDir, { FLEETCAST_AGENT_PROBATION_MS: '300', FLEETCAST_AGENT_PROBATION_MIN_REQUESTS: '1000', ...env });
  const port = await agent.port();
  const first = await status(port);
  if (k.active) {
    // Serving throughout: the restarted agent answers with a model before any install work finishes.
    expect([k.active, want.bundleId]).toContain(first.active?.bundleId);
    expect((await http(port, 'POST', '/v1/predict', INPUT)).status).toBe(200);
  }
  const s = await expectServing(port, want.bundleId, phase);
  // A report from the restarted agent, not one the hub kept from before the kill.
  await fleet.registrySays(k.deviceId, want.bundleId, phase, k.registrySeq);
  // Only what was missing or corrupt in the staging file is asked for again (retries of those are legitimate).
  const again = (fleet.chunkRequests.get(k.deviceId) ?? []).slice(k.requestsBefore).flat();
  expect(again.filter((i) => !k.missing.includes(i))).toEqual([]);
  if (k.missing.length === 0) expect(again).toEqual([]);
  return { agent, port, s };
}
