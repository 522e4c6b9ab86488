/**
 * How a `fleetcast sim` run ends, against the real hub in its default secure
 * mode (the compiled CLI, devices enrolled with the admin token): Ctrl-C
 * stops it cleanly with the summary and the report; a broker that goes away
 * mid-run shows in the live lines and the report (it used to print
 * `{"none":3000}` on, as if the fleet were merely idle).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../simulator/run-record.js';
import { buildCli, REPO } from '../helpers/build-cli.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { startSimHub, type SimHub } from '../helpers/sim-hub.js';

let h: SimHub;

beforeAll(async () => { h = await startSimHub(); }, 60_000);
afterAll(async () => { await h?.hub.close(); cleanupTempDirs(); });

describe('fleetcast sim: how a run ends', () => {
  it('Ctrl-C (SIGINT) stops the run cleanly: summary printed, report written, exit 130', async () => {
    const report = tempDir('fleetcast-sim-int-');
    const cli = await buildCli();
    const p = spawn(process.execPath, [cli, 'sim', '--agents', '2', '--duration', '300', '--rate', '10', '--report', report, '--broker', h.hub.mqttUrl, '--root', h.keys.rootPath, '--hub', h.hub.httpUrl],
      { cwd: REPO, env: { ...process.env, FLEETCAST_TOKEN_FILE: h.tokenFile, FLEETCAST_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    const exited = new Promise<number | null>((r) => p.on('close', (c) => r(c)));
    await waitFor(() => /connected 2\/2/.test(out), 'the first live line', 30_000);
    p.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(out).toMatch(/sim: 2 agents interrupted after/);
    const rec = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8')) as RunRecord;
    expect(rec.interrupted).toBe(true);
    expect(readFileSync(join(report, 'report.html'), 'utf8')).toContain('interrupted with Ctrl-C');
  }, 90_000);

  // Last: it closes the hub.
  it('the broker going away mid-run shows in the live lines and the report (it used to print {"none":3000} on)', async () => {
    const report = tempDir('fleetcast-sim-gone-');
    const cli = await buildCli();
    const p = spawn(process.execPath, [cli, 'sim', '--agents', '3', '--duration', '8', '--rate', '20', '--json', '--report', report, '--broker', h.hub.mqttUrl, '--root', h.keys.rootPath, '--hub', h.hub.httpUrl],
      { cwd: REPO, env: { ...process.env, FLEETCAST_TOKEN_FILE: h.tokenFile, FLEETCAST_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    const exited = new Promise<number | null>((r) => p.on('close', (c) => r(c)));
    const lines = () => out.split('\n').filter((l) => l.startsWith('{"t"')).map((l) => JSON.parse(l) as { connected: number; total: number; brokerGone: boolean });
    await waitFor(() => lines().some((l) => l.connected === 3), 'the devices connected', 30_000);
    await h.hub.close();
    expect(await exited).toBe(0);
    expect(lines().some((l) => l.brokerGone && l.connected === 0 && l.total === 3)).toBe(true);
    const rec = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8')) as RunRecord;
    expect(rec.brokerOutages.length).toBeGreaterThan(0);
    expect(readFileSync(join(report, 'report.html'), 'utf8')).toContain('broker gone: no device connected');
  }, 90_000);
});
