/**
 * The compiled `fleetcast-agent` daemon as a child process, the way systemd
 * runs it: it installs an assignment from a real broker, serves predictions
 * over HTTP, stops cleanly on SIGTERM, and refuses bad arguments with a coded
 * error line and exit status 2 (a missing root.json too).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from '../helpers/agent-broker.js';
import { http } from '../helpers/agent-fixture.js';
import { makeBundle, TestHub } from '../helpers/agent-test-hub.js';
import { distFile } from '../helpers/build-cli.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';

let agentEntry: string;
let broker: TestBroker;
let hub: TestHub;
const keys = makeKeys();
const children: ChildProcess[] = [];

beforeAll(async () => {
  // dist/ is compiled once, before the run, by test/setup/global.ts.
  agentEntry = distFile('agent/fleetcast-agent.js');
  broker = await startBroker();
  hub = await TestHub.start(broker.url, keys);
}, 150_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await hub?.stop();
  await broker?.close();
  cleanupTempDirs();
});

function agentCli(args: string[]) {
  const child = spawn(process.execPath, [agentEntry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const io = { stdout: '', stderr: '', exit: new Promise<number | null>((r) => child.on('exit', (code) => r(code))) };
  child.stdout!.on('data', (b: Buffer) => { io.stdout += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { io.stderr += b.toString(); });
  return { child, io };
}

describe('fleetcast-agent (compiled CLI)', () => {
  it('installs, serves predictions over HTTP, and stops cleanly on SIGTERM', async () => {
    const b = hub.add(await makeBundle(keys, { version: 1, mlp: { seed: 61 } }));
    const data = join(tempDir(), 'agent-data');
    mkdirSync(data);
    const { child, io } = agentCli(['--broker', broker.url, '--device-id', 'cli-dev', '--data', data, '--root', keys.rootPath, '--listen', '127.0.0.1:0']);
    const port = Number(await waitFor(() => /predict API http:\/\/127\.0\.0\.1:(\d+)/.exec(io.stdout)?.[1], 'listen line'));
    await hub.assign('cli-dev', b, 1);
    await waitFor(() => io.stdout.includes('installed mlp v1'), 'installed line');
    const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: { x: [[1, 2, 3, 4]], category: [[1]] } }));
    expect(r.status).toBe(200);
    expect(r.json.model.bundleId).toBe(b.bundleId);
    child.kill('SIGTERM');
    expect(await io.exit).toBe(0);
    expect(io.stdout).toContain('SIGTERM, stopping');
    // One log stream: every stdout line is a JSON log record, none of them an error; stderr is empty.
    const lines = io.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
    expect(lines.find((l) => l.event === 'installed')).toMatchObject({ level: 'info', name: 'mlp', version: 1, bundleId: b.bundleId });
    expect(io.stderr).toBe('');
  });

  it('refuses missing or unknown arguments with a coded error and exit status 2', async () => {
    const missing = agentCli(['--broker', broker.url]);
    expect(await missing.io.exit).toBe(2);
    expect(missing.io.stderr).toMatch(/^error PROTO_ERR_INVALID_OPTION: --device-id is required/);
    const unknown = agentCli(['--broker', broker.url, '--bogus', 'x']);
    expect(await unknown.io.exit).toBe(2);
    expect(unknown.io.stderr).toMatch(/^error PROTO_ERR_INVALID_OPTION/);
    const badConfig = join(tempDir(), 'agent.json');
    writeFileSync(badConfig, JSON.stringify({ heartbeatMillis: 5 }));
    const typo = agentCli(['--broker', broker.url, '--device-id', 'd', '--data', tempDir(), '--root', keys.rootPath, '--config', badConfig]);
    expect(await typo.io.exit).toBe(2);
    expect(typo.io.stderr).toMatch(/PROTO_ERR_UNKNOWN_OPTION.*heartbeatMillis/);
    const noRoot = agentCli(['--broker', broker.url, '--device-id', 'd', '--data', tempDir(), '--root', join(tempDir(), 'missing.json')]);
    // A missing root.json is configuration: exit 2, which the systemd unit does not restart.
    expect(await noRoot.io.exit).toBe(2);
    expect(noRoot.io.stderr).toMatch(/^error SIGN_ERR_BAD_ROOT/);
  });
});
