/**
 * The compiled fleetcast-agent as a real process against the real hub in secure
 * mode (authentication on, devices enrolled): what a device does when its MQTT
 * login is refused, and what the hub and the agent leave on disk.
 */
import { Writable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../hub/hub.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { http } from '../helpers/agent-fixture.js';
import { compileAgent, killAll, spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { api, makeBundle } from '../helpers/hub-harness.js';

let entry: string;
let hub: Hub;
const keys = makeKeys();
/** The hub's log records (JSON), to see the CONNECT attempts its broker refused. */
const hubLog: { time: number; code?: string; clientId?: string }[] = [];
let creds: MqttCredentials;

beforeAll(async () => {
  entry = compileAgent();
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { for (const l of chunk.toString().split('\n')) if (l) hubLog.push(JSON.parse(l)); cb(); } });
  hub = await startHub({ dataDir: tempDir('fleetcast-hub-'), keysDir: keys.dir, mqttPort: 0, httpPort: 0, mqttClientId: `hub-${process.pid}`, insecureDemo: false }, { logger: pino({ level: 'info' }, sink) });
  creds = new MqttCredentials(hub.store.db);
}, 200_000);

/** tmpfs mounts made by the full-disk test, unmounted even when it fails half-way. */
const mounts: string[] = [];

afterAll(async () => {
  killAll();
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  await hub?.close();
  cleanupTempDirs();
});

/** Start the compiled agent with a JSON config file (the way a device is provisioned). */
function startAgent(deviceId: string, config: Record<string, unknown>, data = join(tempDir('fleetcast-agent-'), 'data')): AgentProcess & { data: string } {
  const file = join(tempDir(), 'agent.json');
  writeFileSync(file, JSON.stringify({ heartbeatMs: 0, ...config }));
  const p = spawnAgent(entry, ['--broker', hub.mqttUrl, '--device-id', deviceId, '--data', data, '--root', keys.rootPath, '--listen', '127.0.0.1:0', '--config', file]);
  return { ...p, data };
}
/** The predict API's port once the agent says it listens; an agent that exits instead fails at once, with its last words. */
const portOf = (p: AgentProcess) => waitFor(() => {
  if (p.child.exitCode !== null) throw new Error(`the agent exited with status ${p.child.exitCode}: ${(p.io.stderr + p.io.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  return /predict API http:\/\/127\.0\.0\.1:(\d+)/.exec(p.io.stdout)?.[1];
}, 'predict API listening', 60_000).then(Number);
// The agent's log is one JSON stream on stdout (agent/fleetcast-agent.ts).
const logLines = (p: AgentProcess) => p.io.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string; code?: string; msg?: string });

describe('an agent whose MQTT login is refused', () => {
  it('keeps retrying with growing jittered waits, shows the coded reason, logs it once, and connects without a restart once its credential is right', async () => {
    const dev = 'login-dev';
    const secretFile = join(tempDir(), 'mqtt-password');
    writeFileSync(secretFile, 'not-the-password\n', { mode: 0o600 });
    // The login retry schedule, shortened for the test: 300 ms doubling to 2.4 s, each wait at least half its step.
    const first = 300; const cap = 2400;
    const agent = startAgent(dev, { mqttUsername: dev, mqttPasswordFile: secretFile, loginRetryMs: first, loginRetryMaxMs: cap });
    const port = await portOf(agent);
    const refused = () => hubLog.filter((l) => l.code === 'HUB_ERR_MQTT_AUTH' && l.clientId === dev).map((l) => l.time);
    // It keeps trying (the old agent tried once and never again).
    await waitFor(() => refused().length >= 6, 'six refused CONNECTs at the broker', 60_000);
    const times = refused();
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    // Every wait is at least half its backoff step (load can only lengthen them): 150, 300, 600, 1200, 1200 ms…
    const lower = gaps.map((_, i) => Math.min(cap, first * 2 ** i) / 2);
    for (let i = 0; i < gaps.length; i++) expect(gaps[i], `gap ${i + 1} of ${JSON.stringify(gaps)}`).toBeGreaterThanOrEqual(lower[i] - 25);
    // The status says why, with its code, in JSON and on the page.
    const st = (await http(port, 'GET', '/v1/status')).json;
    expect(st.connected).toBe(false);
    expect(st.broker).toMatchObject({ code: 'AGENT_ERR_BROKER_AUTH' });
    expect(st.broker.attempts).toBeGreaterThanOrEqual(5);
    const page = (await http(port, 'GET', '/')).json as string;
    expect(page).toMatch(/<tr id="row-broker"><th scope="row">broker<\/th><td>not connected: <code>AGENT_ERR_BROKER_AUTH<\/code>/);
    expect(page).not.toContain('<p id="no-errors">none</p>');
    // One log line for the reason, not one per attempt.
    expect(logLines(agent).filter((l) => l.code === 'AGENT_ERR_BROKER_AUTH')).toHaveLength(1);

    // The operator enrols the device (new secret) and installs it where the agent reads it: no restart.
    writeFileSync(secretFile, `${creds.enrollDevice(dev).password}\n`);
    await waitFor(async () => (await http(port, 'GET', '/v1/status')).json.connected === true, 'connected with the new secret', 60_000);
    expect((await http(port, 'GET', '/v1/status')).json.broker).toBeNull();
    await waitFor(async () => (await api<{ devices: { id: string }[] }>(hub, 'GET', '/v1/devices')).body.devices.some((d) => d.id === dev), 'the hub sees the device', 30_000);
    expect(agent.child.exitCode).toBeNull();
    agent.child.kill('SIGTERM');
    expect((await agent.exit).code).toBe(0);
  });
});

/** Every folder and file under `dir`, with its permission bits. */
function modes(dir: string): { path: string; mode: number; dir: boolean }[] {
  const out: { path: string; mode: number; dir: boolean }[] = [];
  const walk = (p: string) => {
    const st = lstatSync(p);
    out.push({ path: p, mode: st.mode & 0o777, dir: st.isDirectory() });
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  walk(dir);
  return out;
}
const wider = (m: { path: string; mode: number; dir: boolean }[]) => m.filter((e) => (e.mode & 0o077) !== 0).map((e) => `${e.path} 0${e.mode.toString(8)}`);

describe('file modes', () => {
  it('the hub\'s data (hub.db, its WAL, blobs) and the agent\'s data folder and models are private after an install: folders 0700, files 0600', async () => {
    const dev = 'modes-dev';
    const password = creds.enrollDevice(dev).password;
    // As systemd's StateDirectory= leaves it (0755), with a file an older agent wrote 0644.
    const data = join(tempDir('fleetcast-agent-'), 'data');
    mkdirSync(data, { mode: 0o755 }); chmodSync(data, 0o755);
    writeFileSync(join(data, 'control.json'), '{}', { mode: 0o644 }); chmodSync(join(data, 'control.json'), 0o644);
    const agent = startAgent(dev, { mqttUsername: dev, mqttPassword: password }, data);
    await portOf(agent);
    await waitFor(async () => (await api<{ devices: { id: string }[] }>(hub, 'GET', '/v1/devices')).body.devices.some((d) => d.id === dev), 'device registered', 60_000);
    const bundle = await makeBundle([keys.keys.release], { chunkSize: 4096 });
    expect((await api(hub, 'POST', '/v1/bundles', readFileSync(bundle.path))).status).toBe(201);
    expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: [dev] })).status).toBe(200);
    await waitFor(() => agent.io.stdout.includes('installed churn v1'), 'installed', 60_000);

    const hubFiles = modes(hub.options.dataDir);
    const names = hubFiles.map((e) => e.path.slice(hub.options.dataDir.length));
    expect(names).toEqual(expect.arrayContaining(['/hub.db', '/hub.db-wal', `/blobs/${bundle.bundleId}.zst`]));
    expect(wider(hubFiles)).toEqual([]);
    expect(hubFiles.find((e) => e.path.endsWith('/hub.db'))!.mode).toBe(0o600);
    expect(hubFiles.filter((e) => e.dir).every((e) => e.mode === 0o700)).toBe(true);

    const agentFiles = modes(agent.data);
    expect(agentFiles.some((e) => e.path.endsWith(`/models/${bundle.bundleId}/model.onnx`) && e.mode === 0o600)).toBe(true);
    expect(agentFiles[0]).toMatchObject({ dir: true, mode: 0o700 });
    expect(wider(agentFiles)).toEqual([]);
    // What was tightened at start is said once, with the paths.
    expect(logLines(agent).find((l) => l.level === 'warn' && /readable by other users/.test(l.msg ?? ''))?.msg).toContain(`${data} (0755)`);
    agent.child.kill('SIGTERM');
    expect((await agent.exit).code).toBe(0);
  });
});

/** Every file under `dir` whose name an atomic write gives its temporary copy. */
const temps = (dir: string) => modes(dir).filter((e) => /\.tmp-[0-9]+$/.test(e.path)).map((e) => e.path);

describe('an agent on a full disk', () => {
  it('boots, serves its installed model, reports AGENT_ERR_DISK_SPACE in its status and to the hub, and leaves no temporary files (a real full tmpfs); Full_disk_boot_then_freed_reports_heard: the boot after space is freed is heard', async (ctx) => {
    const mnt = tempDir('fleetcast-full-disk-');
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) {
      // A full disk without a mount would be a seam, not the real thing: say why this did not run.
      console.warn(`SKIPPED the full-disk test: cannot mount a tmpfs here (${(m.stderr || m.error?.message || '').trim()}); it needs root and mount rights`);
      ctx.skip();
      return;
    }
    mounts.push(mnt);
    try {
      const dev = 'full-dev';
      const config = { mqttUsername: dev, mqttPassword: creds.enrollDevice(dev).password, diskReserveBytes: 0 };
      const data = join(mnt, 'data');
      const first = startAgent(dev, config, data);
      await portOf(first);
      await waitFor(async () => (await api<{ devices: { id: string }[] }>(hub, 'GET', '/v1/devices')).body.devices.some((d) => d.id === dev), 'device registered', 60_000);
      const bundle = await makeBundle([keys.keys.release], { name: 'disk', chunkSize: 4096, model: { seed: 31 } });
      expect((await api(hub, 'POST', '/v1/bundles', readFileSync(bundle.path))).status).toBe(201);
      expect((await api(hub, 'POST', '/v1/deployments', { name: 'disk', version: 1, devices: [dev] })).body).toMatchObject({ devices: [dev] });
      await waitFor(() => first.io.stdout.includes('installed disk v1'), 'installed', 60_000);
      first.child.kill('SIGTERM');
      expect((await first.exit).code).toBe(0);

      // The disk fills up (to the last byte) while the agent is down.
      const filler = openSync(join(mnt, 'filler'), 'w');
      try {
        const block = Buffer.alloc(64 * 1024, 1);
        for (;;) { try { writeSync(filler, block); } catch (e) { if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break; throw e; } }
        for (;;) { try { writeSync(filler, Buffer.alloc(1)); } catch { break; } }
      } finally { closeSync(filler); }
      expect(() => writeFileSync(join(mnt, 'probe'), 'x')).toThrow(/ENOSPC/);

      const again = startAgent(dev, config, data);
      const port = await portOf(again);
      // One row of ones for each input the status lists (dynamic dimensions as 1).
      const inputs: { name: string; shape: (string | number)[] }[] = (await http(port, 'GET', '/v1/status')).json.active.inputs;
      const ones = (shape: (string | number)[]): unknown => (shape.length === 0 ? 1 : Array.from({ length: typeof shape[0] === 'number' && shape[0] > 0 ? shape[0] : 1 }, () => ones(shape.slice(1))));
      const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: Object.fromEntries(inputs.map((i) => [i.name, ones(i.shape)])) }));
      expect(r.status).toBe(200);
      expect(r.json.model.bundleId).toBe(bundle.bundleId);
      const st = (await http(port, 'GET', '/v1/status')).json;
      expect(st.lastError).toMatchObject({ code: 'AGENT_ERR_DISK_SPACE' });
      expect((await http(port, 'GET', '/')).json).toContain('<code>AGENT_ERR_DISK_SPACE</code>');
      await waitFor(() => hub.store.listEvents(dev, 100).some((e) => e.code === 'AGENT_ERR_DISK_SPACE'), 'the hub told of the full disk', 60_000);
      await waitFor(async () => (await http(port, 'GET', '/v1/status')).json.connected === true, 'connected', 30_000);
      // Its failed writes did not leave their temporary copies behind. A write still under way (a checkpoint that
      // just arrived, say) has one for a moment before it fails and removes it: wait for the folder to be clean.
      await waitFor(() => temps(data).length === 0, `no temporary files left (${temps(data).join(', ')})`, 10_000);
      expect(again.child.exitCode).toBeNull();
      again.child.kill('SIGTERM');
      expect((await again.exit).code).toBe(0);

      // Restarted on the same full disk (its boot count could not be saved): its reports are not mistaken for replays.
      const diskEvents = () => hub.store.listEvents(dev, 100).filter((e) => e.code === 'AGENT_ERR_DISK_SPACE').length;
      const before = diskEvents();
      const third = startAgent(dev, config, data);
      await portOf(third);
      await waitFor(() => diskEvents() > before, 'the hub took the third boot\'s report', 60_000);
      third.child.kill('SIGTERM');
      expect((await third.exit).code).toBe(0);

      // Space freed: the next boot saves its count, and the hub takes its reports too. Before, that count's range was
      // the one the full-disk boots had used, so the hub dropped every report of that boot as a replay.
      const seqBefore = hub.store.getDevice(dev)!.state.seq;
      rmSync(join(mnt, 'filler'));
      const fourth = startAgent(dev, config, data);
      await portOf(fourth);
      await waitFor(() => hub.store.getDevice(dev)!.state.seq !== seqBefore, 'the hub took a report of the boot after space was freed', 60_000);
      expect(hub.store.getDevice(dev)!.state.seq).toBeGreaterThan(seqBefore);
      fourth.child.kill('SIGTERM');
      expect((await fourth.exit).code).toBe(0);
    } finally {
      spawnSync('umount', ['-l', mnt]);
    }
  }, 240_000);
});

describe('file modes of an existing hub data folder', () => {
  it('a hub started on a data folder an older hub left readable by others tightens it and says so', async () => {
    const dir = tempDir('fleetcast-hub-old-');
    mkdirSync(join(dir, 'blobs'), { mode: 0o755 });
    writeFileSync(join(dir, 'blobs', 'x.zst'), 'x', { mode: 0o644 });
    for (const [p, m] of [[dir, 0o755], [join(dir, 'blobs'), 0o755], [join(dir, 'blobs', 'x.zst'), 0o644]] as const) chmodSync(p, m);
    const lines: { level: number; msg?: string }[] = [];
    const sink = new Writable({ write(chunk: Buffer, _e, cb) { for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
    const old = await startHub({ dataDir: dir, keysDir: keys.dir, mqttPort: 0, httpPort: 0, mqttClientId: `hub-old-${process.pid}`, insecureDemo: false }, { logger: pino({ level: 'warn' }, sink) });
    try {
      expect(wider(modes(dir))).toEqual([]);
      expect(lines.find((l) => /readable by other users/.test(l.msg ?? ''))?.msg).toContain(`${join(dir, 'blobs', 'x.zst')} (0644)`);
    } finally { await old.close(); }
  });
});
