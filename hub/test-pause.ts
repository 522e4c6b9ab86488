/**
 * Test-only hook for the hub's crash tests (test/integration/rollout-crash):
 * with FLEETCAST_HUB_TEST_PAUSE_AT=<point> (or <point>:<detail>, e.g.
 * assigning:broad) the hub stops that piece of work right after persisting it,
 * says `paused <point>:<detail>` on stderr, and waits, so the test can SIGKILL
 * it in exactly that state (Killed_in_<State>). The rest of the process keeps
 * serving. Unset, it costs one environment lookup. (The agent has its own, in
 * agent/test-pause.ts: hub and agent never import each other.)
 */
export async function hubTestPause(point: string, detail: string): Promise<void> {
  const at = process.env.FLEETCAST_HUB_TEST_PAUSE_AT;
  if (!at || (at !== point && at !== `${point}:${detail}`)) return;
  process.stderr.write(`paused ${point}:${detail}\n`);
  await new Promise<never>(() => { setInterval(() => {}, 1 << 30); });
}
