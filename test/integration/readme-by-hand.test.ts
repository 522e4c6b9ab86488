/**
 * README's "By hand" block, run as written: the first ```sh block after the
 * heading, as one bash script (`bash -e`: any failing command fails the test),
 * in a temporary folder, with only the repository path and the three ports
 * (1883, 8080, 9090) substituted. A wrong example in the README fails here.
 * The hub it starts is the default secure one and the agent the compiled one.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli } from '../helpers/build-cli.js';
import { cleanupTempDirs, freePort, tempDir, waitFor } from '../helpers/env.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
afterAll(cleanupTempDirs);

/** The shell block right after `## By hand`. */
export function byHandBlock(readme: string): string {
  const at = readme.indexOf('\n## By hand\n');
  if (at < 0) throw new Error('README has no "## By hand" section');
  const m = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!m) throw new Error('no ```sh block under "## By hand"');
  return m[1];
}

describe('README "By hand"', () => {
  beforeAll(async () => { await buildCli(ROOT); }, 180_000);

  it('README_by_hand_runs_as_written: every command of the block succeeds against the secure hub it starts', async () => {
    const block = byHandBlock(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    const [mqtt, http, agent] = [await freePort(), await freePort(), await freePort()];
    const script = block
      .replace(/^FC_HOME=\$PWD\b/m, `FC_HOME=${JSON.stringify(ROOT.replace(/\/$/, ''))}`)
      .replace(/\b1883\b/g, String(mqtt)).replace(/\b8080\b/g, String(http)).replace(/\b9090\b/g, String(agent));
    expect(script).not.toBe(block);
    const dir = tempDir('fleetcast-readme-');
    writeFileSync(join(dir, 'by-hand.sh'), script);
    const env = { ...process.env };
    for (const k of ['FLEETCAST_HUB', 'FLEETCAST_TOKEN', 'FLEETCAST_TOKEN_FILE']) delete env[k];
    // Its own process group, so a script that fails half-way is stopped with the daemons it started.
    const p = spawn('bash', ['-e', 'by-hand.sh'], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    p.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    const guard = setTimeout(() => { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } }, 240_000);
    // 'exit', not 'close': a daemon the block failed to stop would hold the pipes open; that is checked below.
    const code = await new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
    clearTimeout(guard);
    // The block's last line stops the hub and the agent: nothing of its process group may be left.
    const alive = () => { try { process.kill(-p.pid!, 0); return true; } catch { return false; } };
    const left = await waitFor(() => (alive() ? undefined : 'gone'), 'the hub and the agent to stop', 60_000).then(() => false, () => true);
    try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* every process already ended */ }
    expect(code, `stdout:\n${out.slice(-3000)}\nstderr:\n${err.slice(-3000)}`).toBe(0);
    // What the block promises, seen in its output.
    expect(out).toMatch(/^ok churn v1 /m);
    expect(out).toMatch(/"outputs":\{.*"model":\{"name":"churn","version":1/);
    expect(out).toMatch(/^started rollout ro-[0-9a-f]+/m);
    expect(out).toContain('exit 4: 3 = drift, 4 = not judged');
    expect(out).toMatch(/^dev-1\s+online\s+churn@[12]\s/m);
    // The simulator against the block's secure hub: its devices enrolled through the API, its summary printed.
    expect(out).toMatch(/^sim: /m);
    expect(out + err).not.toMatch(/npm warn/i);
    expect(left, 'the hub or the agent still ran after `kill %2 %1`').toBe(false);
  }, 300_000);
});
