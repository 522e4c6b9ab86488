/**
 * bench/agent-fleet.ts starts a real hub in a process of its own (at SCHED_IDLE) for agent-swap and agent-rss. A
 * setup that fails after the hub started (the agent does not start, a publish is refused) must not leave that hub
 * (and its broker) running after the benchmark has failed; a swap the agent fails must fail the benchmark, not
 * leave it waiting for good (holding the machine's benchmark lock).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { distFile } from '../helpers/build-cli.js';

/** Live (not zombie) child processes of this process whose command line runs `fleetcast.js hub`. */
function hubChildren(): number[] {
  const out: number[] = [];
  for (const t of readdirSync(`/proc/${process.pid}/task`)) {
    let kids: number[] = [];
    try { kids = readFileSync(`/proc/${process.pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number); } catch { continue; }
    for (const pid of kids) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((a) => a.endsWith('fleetcast.js')) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('\0hub\0')) out.push(pid);
      } catch { /* gone */ }
    }
  }
  return out;
}

afterEach(() => { for (const pid of hubChildren()) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } } });

describe.runIf(process.platform === 'linux')('bench agent fleet', () => {
  it('Bench_hub_stops_when_setup_fails: an agent that cannot start fails the setup and leaves no hub running', async () => {
    const { agentFleet } = await import(distFile('bench/agent-fleet.js')) as typeof import('../../bench/agent-fleet.js');
    const { cleanupBenchDirs } = await import(distFile('bench/dirs.js')) as typeof import('../../bench/dirs.js');
    expect(hubChildren()).toEqual([]);
    try {
      // An address the agent cannot listen on: its start fails after the hub is up.
      await expect(agentFleet('cleanup-test', { listen: '203.0.113.1:1' })).rejects.toThrow();
      const until = Date.now() + 20_000;
      while (hubChildren().length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(hubChildren()).toEqual([]);
    } finally {
      cleanupBenchDirs();
    }
  }, 60_000);

  it('Bench_swap_fails_when_the_install_fails: a swap the agent refuses rejects with its code instead of waiting for good', async () => {
    const { agentFleet } = await import(distFile('bench/agent-fleet.js')) as typeof import('../../bench/agent-fleet.js');
    const { cleanupBenchDirs } = await import(distFile('bench/dirs.js')) as typeof import('../../bench/dirs.js');
    // Every model is over this limit: the agent fails the install (and reports it).
    const fleet = await agentFleet('swap-fail-test', { maxRawModelBytes: 1 });
    try {
      const outcome = await Promise.race([
        fleet.swapTo(1).then(() => 'committed', (e: Error) => e.message),
        new Promise<string>((r) => setTimeout(() => r('still waiting after 40 s'), 40_000)),
      ]);
      expect(outcome).toMatch(/AGENT_ERR_/);
    } finally {
      await fleet.close();
      cleanupBenchDirs();
    }
  }, 90_000);
});
