/**
 * Test-only hook for the crash suite (test/crash/): with
 * FLEETCAST_TEST_PAUSE_AT=<phase> the agent stops right after persisting that
 * phase, says so on stderr, and waits, so the test can SIGKILL it in exactly
 * that state (Mender's Killed_in_<State>). Unset, it costs one env lookup.
 */
export async function testPause(phase: string): Promise<void> {
  const at = process.env.FLEETCAST_TEST_PAUSE_AT;
  if (!at || at !== phase) return;
  process.stderr.write(`paused ${phase}\n`);
  await new Promise<never>(() => { setInterval(() => {}, 1 << 30); });
}
