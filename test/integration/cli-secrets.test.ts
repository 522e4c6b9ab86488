/**
 * Secrets stay off the command line, where any local user reads them
 * (/proc/PID/cmdline, ps). The compiled hub takes its MQTT password from a file
 * (--mqtt-password-file) or FLEETCAST_MQTT_PASSWORD and really logs in with it
 * to a mosquitto that refuses anyone else; `--mqtt-password` is refused before
 * anything starts, and so is the client's `--token`.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HUB_MQTT_USER } from '../../hub/mqtt-credentials.js';
import { buildCli } from '../helpers/build-cli.js';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';
import { hasMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';
import { startHubProcess, type HubProcess } from '../helpers/hub-process.js';
import { startSecureMosquitto } from '../helpers/mqtt-auth.js';

afterAll(cleanupTempDirs);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
const hasProc = existsSync('/proc/self/cmdline');

async function cli(cliPath: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [cliPath, ...args], { cwd: ROOT, timeout: 60_000, env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

describe.skipIf(!hasMosquitto || !hasProc)('secrets are not command-line flags', () => {
  const keys = makeKeys();
  const secret = `hub-secret-${Math.random().toString(36).slice(2)}`;
  let broker: Mosquitto;
  let CLI: string;
  const hubs: HubProcess[] = [];
  const baseArgs = () => ['--keys', keys.dir, '--http-port', '0', '--log-level', 'warn', '--broker', broker.url, '--mqtt-username', HUB_MQTT_USER];

  beforeAll(async () => {
    CLI = await buildCli(ROOT);
    broker = await startSecureMosquitto({ [HUB_MQTT_USER]: secret });
  }, 180_000);
  afterAll(async () => { for (const h of hubs) await h.stop(); await broker?.stop(); });

  it('Secret_not_in_cmdline: the hub logs in to mosquitto with a password from --mqtt-password-file, absent from /proc/PID/cmdline', async () => {
    const file = join(tempDir('fleetcast-secret-'), 'hub-mqtt.secret');
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    const env = { ...process.env };
    delete env.FLEETCAST_MQTT_PASSWORD;
    const hub = await startHubProcess(ROOT, CLI, ['--data', tempDir('fleetcast-hub-'), ...baseArgs(), '--mqtt-password-file', file], env);
    hubs.push(hub);
    // The broker refuses every other credential: a hub that printed its URLs is connected with this one.
    expect((await (await fetch(`${hub.httpUrl}/v1/health`)).json())).toMatchObject({ ok: true, broker: { connected: true } });
    const cmdline = readFileSync(`/proc/${hub.proc.pid}/cmdline`, 'utf8');
    expect(cmdline).toContain('--mqtt-password-file');
    expect(cmdline).not.toContain(secret);
    await hub.stop();
  }, 120_000);

  it('the hub takes the password from FLEETCAST_MQTT_PASSWORD just as well', async () => {
    const hub = await startHubProcess(ROOT, CLI, ['--data', tempDir('fleetcast-hub-'), ...baseArgs()], { ...process.env, FLEETCAST_MQTT_PASSWORD: secret });
    hubs.push(hub);
    expect((await (await fetch(`${hub.httpUrl}/v1/health`)).json())).toMatchObject({ ok: true, broker: { connected: true } });
    expect(readFileSync(`/proc/${hub.proc.pid}/cmdline`, 'utf8')).not.toContain(secret);
    await hub.stop();
  }, 120_000);

  it('--mqtt-password on the command line is refused (exit 2, PROTO_ERR_SECRET_IN_ARGV) and no hub starts', async () => {
    const data = tempDir('fleetcast-hub-');
    const r = await cli(CLI, ['hub', '--data', data, ...baseArgs(), '--mqtt-password', secret]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error PROTO_ERR_SECRET_IN_ARGV: .*--mqtt-password-file FILE or FLEETCAST_MQTT_PASSWORD/m);
    expect(r.stdout).not.toMatch(/api http/);
    expect(existsSync(join(data, 'admin.token'))).toBe(false);
  }, 60_000);

  it('--mqtt-password-file naming a missing file is a usage error naming it', async () => {
    const r = await cli(CLI, ['hub', '--data', tempDir('fleetcast-hub-'), ...baseArgs(), '--mqtt-password-file', '/nonexistent/hub.secret']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error PROTO_ERR_INVALID_OPTION: --mqtt-password-file \/nonexistent\/hub.secret: ENOENT/m);
  }, 60_000);

  it('the client refuses --token (exit 2) and reads FLEETCAST_TOKEN_FILE', async () => {
    const r = await cli(CLI, ['devices', 'list', '--hub', 'http://127.0.0.1:9', '--token', 'fct_would_leak']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error PROTO_ERR_SECRET_IN_ARGV: .*FLEETCAST_TOKEN_FILE/m);
  }, 60_000);
});
