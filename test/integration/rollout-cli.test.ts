/**
 * Issue #3 from the operator's shell: the compiled `fleetcast` CLI against a
 * compiled hub (mosquitto as the broker, six real agents). token create →
 * rollout start (inline rings) → watch (not a TTY: prints changes, exits when
 * done) → status --json → history; refusals exit non-zero with the code.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleet, type Fleet } from '../../simulator/fleet.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { buildCli } from '../helpers/build-cli.js';
import { makeBundle } from '../helpers/hub-harness.js';
import { hasMosquitto, startMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';

afterAll(cleanupTempDirs);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'cli/dist/fleetcast.js');
const run = promisify(execFile);

describe.skipIf(!hasMosquitto)('fleetcast rollout / token', () => {
  const keys = makeKeys();
  const data = tempDir('fleetcast-cli-hub-');
  let broker: Mosquitto;
  let hub: ChildProcess;
  let fleet: Fleet;
  let env: NodeJS.ProcessEnv = {};

  const fc = (...args: string[]) => fcAs(undefined, ...args);
  /** With `token` in FLEETCAST_TOKEN (it wins over FLEETCAST_TOKEN_FILE; a --token flag is refused: protocol/cli-args.ts). */
  async function fcAs(token: string | undefined, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const r = await run(process.execPath, [CLI, ...args], { cwd: ROOT, timeout: 60_000, env: token === undefined ? env : { ...env, FLEETCAST_TOKEN: token } });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const x = e as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
    }
  }

  beforeAll(async () => {
    await buildCli(ROOT);
    expect(existsSync(CLI)).toBe(true);
    broker = await startMosquitto();
    const httpPort = await freePort();
    let out = '';
    hub = spawn(process.execPath, [CLI, 'hub', '--data', data, '--keys', keys.dir, '--broker', broker.url, '--http-port', String(httpPort), '--log-level', 'warn'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    hub.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    const tokenFile = await waitFor(() => /admin token in (\S+)/.exec(out)?.[1], 'the hub to print its token file', 30_000);
    env = { ...process.env, FLEETCAST_HUB: `http://127.0.0.1:${httpPort}`, FLEETCAST_TOKEN_FILE: tokenFile };
    fleet = await startFleet({ brokerUrl: broker.url, agents: 6, rootPath: join(keys.dir, 'root.json'), dataDir: tempDir('fleetcast-cli-fleet-'), agentOptions: { heartbeatMs: 1_000, chunkTimeoutMs: 500 } });
  }, 180_000);

  afterAll(async () => {
    await fleet?.stop();
    if (hub && hub.exitCode === null) { const gone = new Promise((r) => hub.once('exit', r)); hub.kill('SIGKILL'); await gone; }
    await broker?.stop();
  });

  it('creates an operator token and runs a three-ring rollout to completion from the shell', async () => {
    const made = await fc('token', 'create', '--role', 'operator', '--label', 'ci');
    expect(made.code).toBe(0);
    const operator = made.stdout.trim();
    expect(operator).toMatch(/^fct_/);
    expect(made.stderr).toMatch(/shown only now/);
    for (const v of [1, 2]) expect((await fc('publish', (await makeBundle([keys.keys.release], { version: v, model: { seed: v } })).path)).code).toBe(0);
    await waitFor(async () => (await fc('devices', 'list', '--json')).stdout.includes('sim-5'), 'devices registered', 20_000);
    expect((await fc('deploy', 'churn@1', '--all')).code).toBe(0);
    await fleet.waitForVersion('churn', 1, 30_000);

    // From here on, the operator token only (FLEETCAST_TOKEN wins over FLEETCAST_TOKEN_FILE).
    const drive = fleet.drive({ concurrency: 2 });
    try {
      const rf = join(tempDir('fleetcast-rings-'), 'rings.json');
      writeFileSync(rf, JSON.stringify({ rings: [{ name: 'canary', percent: 20 }, { name: 'early', percent: 50 }, { name: 'broad', percent: 100 }], gates: { minRequests: 5, soak: '0s', maxLatencyRatio: 1000 } }));
      const started = await fcAs(operator, 'rollout', 'start', 'churn@2', '--rings', rf, '--auto-promote', '--reason', 'cli test');
      expect(started.code).toBe(0);
      const id = /started rollout (ro-[0-9a-f]+)/.exec(started.stdout)![1];
      expect(started.stdout).toMatch(/canary\s+\[/);
      const watched = await fcAs(operator, 'rollout', 'watch', id, '--interval', '200');
      expect(watched.code).toBe(0);
      expect(watched.stdout).toContain('COMPLETED');
      expect(watched.stdout).not.toContain('\x1b[');
      const st = JSON.parse((await fcAs(operator, 'rollout', 'status', id, '--json')).stdout) as { state: string; rings: { devices: number; counts: { installed: number } }[] };
      expect(st.state).toBe('completed');
      expect(st.rings.map((r) => r.devices)).toEqual([2, 1, 3]);
      expect(st.rings.reduce((a, r) => a + r.counts.installed, 0)).toBe(6);
      // A finished rollout's rings are over: none still says it waits on a gate.
      const text = (await fcAs(operator, 'rollout', 'status', id)).stdout;
      expect(text).toContain('COMPLETED');
      expect(text).not.toContain('waiting on');
      // Without an id: a header and one line per rollout.
      const lines = (await fcAs(operator, 'rollout', 'status')).stdout.trimEnd().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[1]).toMatch(new RegExp(`^${id}\\s+churn@2\\s+completed\\s+broad 3/3\\s+3/3\\s+done$`));
      const hist = await fcAs(operator, 'rollout', 'history', id);
      expect(hist.stdout.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[2])).toEqual(['start', 'promote', 'promote', 'complete']);
      expect(hist.stdout).toContain('cli test');
    } finally {
      expect((await drive.stop()).failed).toBe(0);
    }
  }, 120_000);

  it('refuses bad input and bad tokens with the hub\'s code and a non-zero exit', async () => {
    const badFile = join(tempDir('fleetcast-rings-'), 'bad.json');
    writeFileSync(badFile, 'rings: [canary]');
    const r1 = await fc('rollout', 'start', 'churn@2', '--rings', badFile);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/^error HUB_ERR_ROLLOUT_SPEC: /);
    const r2 = await fc('rollout', 'start', 'churn@2', '--window', '99 * * * *');
    expect(r2.stderr).toMatch(/^error HUB_ERR_ROLLOUT_SPEC: .*window/);
    expect((await fc('rollout', 'start', 'churn@2', '--rings', 'canary:150')).stderr).toMatch(/^error HUB_ERR_ROLLOUT_SPEC: /);
    expect((await fc('rollout', 'start', 'ghost@1')).stderr).toMatch(/^error HUB_ERR_UNKNOWN_BUNDLE: /);
    expect((await fcAs('fct_nope', 'rollout', 'status')).stderr).toMatch(/^error HUB_ERR_UNAUTHENTICATED: /);
    // A token on the command line is refused before anything is sent (any local user can read argv).
    const flagged = await fc('rollout', 'status', '--token', 'fct_would_leak');
    expect(flagged.code).toBe(2);
    expect(flagged.stderr).toMatch(/^error PROTO_ERR_SECRET_IN_ARGV: .*FLEETCAST_TOKEN_FILE/);
    expect((await fc('rollout', 'bogus')).code).toBe(2);
    const list = JSON.parse((await fc('rollout', 'status', '--json')).stdout) as unknown[];
    expect(list).toHaveLength(1);
  }, 60_000);
});
