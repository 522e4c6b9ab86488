/**
 * The shipped processes end to end, as an operator runs them (README "By
 * hand"): `fleetcast hub` (compiled, authentication on), `fleetcast device
 * enroll` for the device's credential file (0600), `fleetcast publish` and
 * `fleetcast deploy` with the admin token file, and the compiled agent,
 * SIGKILLed while it decompresses the new model. The restarted agent serves
 * the old model at once, finishes the install, and the hub process's
 * registry says so. The other real-hub suites run the same hub in-process.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/agent-fixture.js';
import { REPO } from '../helpers/build-cli.js';
import { killAll, spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { makeBundle } from '../helpers/hub-harness.js';
import { AGENT_ENTRY, expectServing, INPUT, persisted, status, stopAgent } from '../helpers/real-fleet.js';

const CLI = join(REPO, 'cli/dist/fleetcast.js');
const keys = makeKeys();
const hubData = tempDir('fleetcast-hub-proc-');
let hub: ChildProcess;
let httpUrl = '';
let mqttUrl = '';
let tokenFile = '';
let adminToken = '';

async function fleetcast(...args: string[]): Promise<string> {
  const r = await promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, FLEETCAST_TOKEN_FILE: tokenFile }, timeout: 60_000 });
  return r.stdout;
}

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} (build dist/ first)`).toBe(true);
  const mqttPort = await freePort();
  // No --insecure-demo: every MQTT client must present an enrolled credential.
  hub = spawn(process.execPath, [CLI, 'hub', '--data', hubData, '--keys', keys.dir, '--mqtt-port', String(mqttPort), '--http-port', '0', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  hub.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  hub.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  await waitFor(() => {
    if (hub.exitCode !== null) throw new Error(`hub exited ${hub.exitCode}: ${err}`);
    const api = /api (http:\/\/\S+)/.exec(out);
    const mq = /mqtt (mqtt:\/\/\S+)/.exec(out);
    const tok = /admin token in (\S+)/.exec(out);
    if (api && mq && tok) { httpUrl = api[1]; mqttUrl = mq[1]; tokenFile = tok[1]; return true; }
    return false;
  }, 'the hub process to print its URLs', 60_000);
  adminToken = readFileSync(tokenFile, 'utf8').trim();
}, 120_000);

afterAll(async () => {
  killAll();
  if (hub && hub.exitCode === null) {
    const gone = new Promise((r) => hub.once('exit', r));
    hub.kill('SIGTERM');
    await gone;
  }
  cleanupTempDirs();
});

async function registry(deviceId: string): Promise<any> {
  const r = await fetch(`${httpUrl}/v1/devices/${deviceId}`, { headers: { authorization: `Bearer ${adminToken}` } });
  return r.status === 200 ? r.json() : null;
}

describe('the shipped hub and agent processes', () => {
  it('Killed_in_staging_mid-unpack with `fleetcast hub` (auth on) and an enrolled agent: resumes to the new model, and the hub process hears it', async () => {
    const deviceId = 'proc-dev';
    // Enrollment goes through the hub's API (admin token); --json prints exactly the agent's --config content.
    const cred = JSON.parse(await fleetcast('device', 'enroll', deviceId, '--hub', httpUrl, '--json'));
    const config = join(tempDir('fleetcast-cred-'), `${deviceId}.json`);
    writeFileSync(config, JSON.stringify(cred), { mode: 0o600 });
    const dataDir = tempDir('fleetcast-proc-agent-');
    const start = (env: Record<string, string> = {}): AgentProcess => spawnAgent(AGENT_ENTRY, ['--broker', mqttUrl, '--device-id', deviceId, '--data', dataDir, '--root', keys.rootPath, '--listen', '127.0.0.1:0', '--config', config, '--quiet'], { FLEETCAST_AGENT_HEARTBEAT_MS: '0', FLEETCAST_AGENT_RECONNECT_PERIOD_MS: '100', ...env });
    const portOf = async (a: AgentProcess) => Number(await waitFor(() => /predict API http:\/\/127\.0\.0\.1:(\d+)/.exec(a.io.stdout)?.[1], `listen line (stderr ${a.io.stderr.slice(-300)})`, 60_000));

    const v1 = await makeBundle([keys.keys.release], { version: 1, model: { categorical: true, seed: 51 } });
    const v2 = await makeBundle([keys.keys.release], { version: 2, model: { categorical: true, seed: 52, padFloats: 20000 } });
    for (const b of [v1, v2]) expect(await fleetcast('publish', b.path, '--hub', httpUrl)).toContain(b.bundleId);
    await fleetcast('deploy', 'churn@1', '--hub', httpUrl, '--devices', deviceId);
    const a = start();
    await expectServing(await portOf(a), v1.bundleId, 'committed');
    expect((await stopAgent(a)).code).toBe(0);

    await fleetcast('deploy', 'churn@2', '--hub', httpUrl, '--devices', deviceId);
    const b = start({ FLEETCAST_TEST_PAUSE_AT: 'staging:mid-unpack' });
    await waitFor(() => b.io.stderr.includes('paused staging:mid-unpack\n') || undefined, `paused mid-unpack (stderr ${b.io.stderr.slice(-300)})`, 60_000);
    expect((await stopAgent(b, 'SIGKILL')).signal).toBe('SIGKILL');
    expect(persisted(dataDir).install).toMatchObject({ phase: 'staging', bundleId: v2.bundleId });
    expect(existsSync(join(dataDir, 'models', `${v2.bundleId}.partial`))).toBe(true);
    const seqAtKill = (await registry(deviceId))?.state?.seq ?? -1;

    const c = start();
    const port = await portOf(c);
    expect((await status(port)).active?.bundleId).toBe(v1.bundleId);
    expect((await http(port, 'POST', '/v1/predict', INPUT)).json.model.bundleId).toBe(v1.bundleId);
    const s = await expectServing(port, v2.bundleId, 'committed');
    expect(s.previous?.bundleId).toBe(v1.bundleId);
    await waitFor(async () => {
      const d = await registry(deviceId);
      return d?.state?.seq > seqAtKill && d.state.active?.bundleId === v2.bundleId && d.state.phase === 'committed';
    }, 'the hub process registry shows v2 committed', 60_000, 100);
    expect((await stopAgent(c)).code).toBe(0);
  }, 180_000);
});
