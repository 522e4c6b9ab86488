/**
 * Test-only hooks for the crash suites (test/crash/): with
 * FLEETCAST_TEST_PAUSE_AT=<point> the agent stops at that point, says so on
 * stderr ("paused <point>"), and waits, so the test can SIGKILL it in exactly
 * that state (Mender's Killed_in_<State>). Unset, each costs one env lookup.
 *
 * Points are the install phases (right after persisting them) and the points
 * inside a phase that agent/recovery.ts's RECOVERY_TABLE lists as kill points
 * (`fetching:mid-transfer`, `staging:mid-unpack`, `swapping:switched`).
 */
import { writeSync } from 'node:fs';

/** Stop this async flow for good; the rest of the process (predict API, MQTT) keeps running. */
export async function testPause(point: string): Promise<void> {
  const at = process.env.FLEETCAST_TEST_PAUSE_AT;
  if (!at || at !== point) return;
  process.stderr.write(`paused ${point}\n`);
  await new Promise<never>(() => { setInterval(() => {}, 1 << 30); });
}

/**
 * Stop the whole process where it stands: for points inside work that an
 * awaited pause cannot hold (chunks keep arriving mid-transfer; a stream keeps
 * decompressing mid-unpack). The marker is written synchronously, then the
 * main thread blocks, so nothing after this point runs before the SIGKILL.
 */
export function testFreeze(point: string, before?: () => void): void {
  const at = process.env.FLEETCAST_TEST_PAUSE_AT;
  if (!at || at !== point) return;
  // What the point means to have done before it stops (e.g. writes handed to the kernel).
  before?.();
  writeSync(2, `paused ${point}\n`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}
