/**
 * The operator commands as an operator runs them: the compiled CLI
 * (`node cli/dist/fleetcast.js`) against a hub the CLI itself started.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encode } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { distFile } from '../helpers/build-cli.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { connectDevice, stateReport } from '../helpers/hub-fixtures.js';
import { makeBundle } from '../helpers/hub-harness.js';

afterAll(cleanupTempDirs);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'cli/dist/fleetcast.js');
const run = promisify(execFile);
let tokenFile = '';

async function fleetcast(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    // The hub's first admin token (issue #3): the CLI reads it from FLEETCAST_TOKEN_FILE.
    const r = await run(process.execPath, [CLI, ...args], { cwd: ROOT, timeout: 30_000, env: { ...process.env, FLEETCAST_TOKEN_FILE: tokenFile } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

describe('fleetcast hub / publish / deploy / devices', () => {
  const keys = makeKeys();
  let hubProc: ChildProcess;
  let out = '';
  let httpUrl = '';
  let mqttUrl = '';

  beforeAll(async () => {
    // The CLI as shipped: dist/ is compiled once, before the run, by test/setup/global.ts.
    distFile('cli/fleetcast.js');
    const mqttPort = await freePort();
    hubProc = spawn(process.execPath, [CLI, 'hub', '--data', tempDir(), '--keys', keys.dir, '--mqtt-port', String(mqttPort), '--http-port', '0', '--log-level', 'warn', '--insecure-demo', '--ingest-workers', '2', '--telemetry', '{"flushMs":200}'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    hubProc.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    let err = '';
    hubProc.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    await waitFor(() => {
      if (hubProc.exitCode !== null) throw new Error(`hub exited ${hubProc.exitCode}: ${err}`);
      const api = /api (http:\/\/\S+)/.exec(out);
      const mq = /mqtt (mqtt:\/\/\S+)/.exec(out);
      const tok = /admin token in (\S+)/.exec(out);
      if (api && mq && tok) { httpUrl = api[1]; mqttUrl = mq[1]; tokenFile = tok[1]; return true; }
      return false;
    }, 'the hub to print its URLs', 30_000);
    expect(mqttUrl).toBe(`mqtt://127.0.0.1:${mqttPort}`);
  }, 180_000);

  afterAll(async () => {
    if (hubProc && hubProc.exitCode === null) {
      const gone = new Promise((r) => hubProc.once('exit', r));
      hubProc.kill('SIGKILL');
      await gone;
    }
  });

  it('publishes a bundle, deploys it, and lists the devices as a table and as JSON', async () => {
    const b = await makeBundle([keys.keys.release], { name: 'cli-model', version: 3 });
    const pub = await fleetcast('publish', b.path, '--hub', httpUrl);
    expect(pub).toMatchObject({ code: 0, stdout: `published cli-model@3 bundle ${b.bundleId}\n` });
    expect((await fleetcast('publish', b.path, '--hub', httpUrl)).stdout).toBe(`already published cli-model@3 bundle ${b.bundleId}\n`);

    const dep = await fleetcast('deploy', 'cli-model@3', '--hub', httpUrl, '--devices', 'cli-dev-1,cli-dev-2', '--allow-unknown');
    expect(dep.code).toBe(0);
    expect(dep.stdout).toContain('to 2 device(s)');
    expect(dep.stdout).toMatch(/cli-dev-1 {2}counter 1/);

    const dev = await connectDevice(mqttUrl, 'cli-dev-1');
    try {
      const active = { bundleId: b.bundleId, name: 'cli-model', version: 3 };
      await dev.publishAsync(topics.device('cli-dev-1', 'state'), encode(stateReport('cli-dev-1', { phase: 'committed', active, counter: 1 })), { qos: 1, retain: true });
      const json = await waitFor(async () => {
        const r = await fleetcast('devices', 'list', '--hub', httpUrl, '--json');
        const list = JSON.parse(r.stdout) as { id: string }[];
        return list.length === 1 ? list : undefined;
      }, 'cli-dev-1 listed');
      expect(json[0]).toMatchObject({ id: 'cli-dev-1', phase: 'committed', active, assignment: { counter: 1, version: 3 } });
      const table = await fleetcast('devices', 'list', '--hub', httpUrl);
      const lines = table.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^DEVICE\s+STATE\s+ACTIVE\s+PHASE\s+RING\s+TAGS\s+ASSIGNED\s+LAST ERROR\s+LAST SEEN$/);
      expect(lines[1]).toMatch(/^cli-dev-1\s+online\s+cli-model@3\s+committed\s+-\s+-\s+cli-model@3 #1\s+-\s+\d+s ago$/);
    } finally {
      await dev.endAsync();
    }
  });

  it('prints the hub\'s error code and exits non-zero on refusals and bad arguments', async () => {
    const junk = join(tempDir(), 'junk.fcb');
    writeFileSync(junk, 'not a bundle at all');
    const bad = await fleetcast('publish', junk, '--hub', httpUrl);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error HUB_ERR_BAD_BUNDLE: /);
    expect((await fleetcast('deploy', 'nothing@1', '--hub', httpUrl, '--all')).stderr).toMatch(/^error HUB_ERR_UNKNOWN_BUNDLE: /);
    const both = await fleetcast('deploy', 'cli-model@3', '--hub', httpUrl, '--all', '--devices', 'x');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('PROTO_ERR_INVALID_OPTION');
    expect((await fleetcast('deploy', 'not-a-version', '--hub', httpUrl, '--all')).code).toBe(2);
    const port = await freePort();
    const down = await fleetcast('devices', 'list', '--hub', `http://127.0.0.1:${port}`);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^error HUB_ERR_UNREACHABLE: /);
    expect((await fleetcast('hub', '--data', tempDir(), '--keys', tempDir())).stderr).toMatch(/^error HUB_ERR_KEYS: /);
    // Telemetry options: unknown keys are named, bad JSON is a usage error.
    const unknown = await fleetcast('hub', '--data', tempDir(), '--keys', keys.dir, '--http-port', '0', '--mqtt-port', '0', '--telemetry', '{"flushEvery":5}');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/PROTO_ERR_UNKNOWN_OPTION.*flushEvery/);
    expect((await fleetcast('hub', '--data', tempDir(), '--keys', keys.dir, '--telemetry', '{flushMs')).code).toBe(2);
    expect((await fleetcast('hub', '--data', tempDir(), '--keys', keys.dir, '--ingest-workers', '99', '--http-port', '0', '--mqtt-port', '0')).stderr).toMatch(/PROTO_ERR_INVALID_OPTION.*ingestWorkers/);
  });

  it('Chunk_expect_wait_flags_reach_the_hub_options: --chunk-expect-wait-ms and --chunk-expect-max-wait-ms are the hub options, checked by name', async () => {
    // sim-scale holds a deploy's first chunk flush until every simulated device asked (bench/sim-scale.ts).
    for (const [flag, option] of [['--chunk-expect-wait-ms', 'chunkExpectWaitMs'], ['--chunk-expect-max-wait-ms', 'chunkExpectMaxWaitMs']]) {
      const r = await fleetcast('hub', '--data', tempDir(), '--keys', keys.dir, '--http-port', '0', '--mqtt-port', '0', flag, 'soon');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`PROTO_ERR_INVALID_OPTION.*${option}`));
    }
  });

  it('stops cleanly on SIGTERM', async () => {
    const exited = new Promise<number | null>((r) => hubProc.once('exit', (code) => r(code)));
    hubProc.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('SIGTERM, stopping');
  });
});
