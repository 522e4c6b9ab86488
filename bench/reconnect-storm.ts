/**
 * A reconnect storm against the compiled hub, secure (every device with its
 * own enrolled credential), as an operator runs it: N emulated devices
 * (bench/storm-fleet.ts) connect at once, subscribe and report; a bundle is
 * deployed to all of them; then the hub restarts (stop, and a new process on
 * the same data folder and ports) and the whole fleet reconnects at once.
 * With `mosquitto`, the hub runs with --broker and the broker restarts too
 * (a hub restart alone does not drop devices connected to mosquitto).
 *
 * Measured: enrollment time, time until every device is back (connected,
 * subscribed, its new state report acknowledged and handled by the hub, its
 * assignment received again), the hub's peak RSS (VmHWM), the slowest
 * GET /v1/health during the storm. Checked: the hub never exits, nothing
 * persisted is lost (devices, assignments, each device's last report).
 * `npm run bench -- reconnect-storm` runs 10,000 devices (REGISTERED in bench/run.ts);
 * test/integration/reconnect-storm.test.ts runs a smaller fleet in the suite.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { mosquittoAcl } from '@fleetcast/hub/broker-acl.js';
import { mosquittoConf } from '@fleetcast/hub/mosquitto-conf.js';
import { HUB_MQTT_USER, MqttCredentials } from '@fleetcast/hub/mqtt-credentials.js';
import { HubStore } from '@fleetcast/hub/store.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { benchDir } from './dirs.js';
import { fmt, type BenchResult } from './lib.js';
import { StormFleet, type StormBackoff, type StormDeviceSpec } from './storm-fleet.js';

/** A program on PATH or in the sbin folders (Debian puts mosquitto in /usr/sbin); '' when absent. */
function onPath(program: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  return dirs.map((d) => join(d, program)).find((p) => existsSync(p)) ?? '';
}
export const MOSQUITTO_BIN = onPath('mosquitto');
export const MOSQUITTO_PASSWD_BIN = onPath('mosquitto_passwd');

export interface StormOptions {
  devices: number;
  broker: 'embedded' | 'mosquitto';
  /** The compiled CLI (cli/dist/fleetcast.js). */
  cli: string;
  backoff?: StormBackoff;
  /** How long the fleet may take to come back, each time, before the run fails. */
  boundMs?: number;
  log?: (line: string) => void;
}

export interface StormFigures {
  devices: number;
  enrollMs: number;
  firstConnectMs: number;
  restartMs: number;
  /** From the old hub's exit until every device was back and reporting. */
  backMs: number;
  hubRssPeakMb: number;
  healthMaxMs: number;
  healthFailures: number;
  reconnectsPerDevice: number;
  brokerFaults: number;
  persisted: { devices: number; assignments: number; reportsCurrent: number; assignmentsBefore: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(fn: () => boolean | Promise<boolean>, what: string, timeoutMs: number, alive?: () => void): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    alive?.();
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

export interface HubProc { proc: ChildProcess; httpUrl: string; exited: boolean; err(): string }

export async function startHubProc(cli: string, args: string[], env: NodeJS.ProcessEnv): Promise<HubProc> {
  // FLEETCAST_BENCH_HUB_NODE_ARGS: node flags for the hub process only (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`; NODE_OPTIONS refuses --cpu-prof).
  const nodeArgs = (env.FLEETCAST_BENCH_HUB_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, cli, 'hub', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  const h: HubProc = { proc, httpUrl: '', exited: false, err: () => err };
  proc.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  // Only the tail is kept: a storm logs a line per refused or dropped client.
  proc.stderr!.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-20_000); });
  proc.once('exit', () => { h.exited = true; });
  await until(() => {
    if (h.exited) throw new Error(`hub exited ${proc.exitCode}: ${err.slice(-2000)}`);
    const m = /api (https?:\/\/\S+)/.exec(out);
    if (m) h.httpUrl = m[1];
    return m !== null;
  }, 'the hub to print its URLs', 120_000);
  return h;
}

export async function stopHubProc(h: HubProc): Promise<void> {
  if (h.exited) return;
  const gone = new Promise((r) => h.proc.once('exit', r));
  h.proc.kill('SIGTERM');
  await gone;
}

/** Peak resident set of a live process (Linux /proc; 0 elsewhere). */
export function peakRssMb(pid: number | undefined): number {
  try { return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024; } catch { return 0; }
}

export async function startMosquitto(dir: string, port: number): Promise<ChildProcess> {
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, ...mosquittoConf({ passwordFile: join(dir, 'passwd'), aclFile: join(dir, 'acl') }).trimEnd().split('\n'),
    'persistence false', 'log_dest stderr', 'log_type error', ...(process.getuid?.() === 0 ? ['user root'] : [])].join('\n') + '\n');
  const proc = spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'ignore', 'ignore'] });
  await until(() => new Promise<boolean>((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  }), 'mosquitto to listen', 30_000);
  return proc;
}

export async function stopProc(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

/** Enroll devices in the hub's store (SQLite in dataDir): one transaction; a salted SHA-256 per device (hub/mqtt-credentials.ts). */
export function enrollEmbedded(dataDir: string, ids: readonly string[]): StormDeviceSpec[] {
  const store = HubStore.open(dataDir);
  try {
    const creds = new MqttCredentials(store.db);
    return store.db.transaction(() => ids.map((id) => ({ id, password: creds.enrollDevice(id).password })))();
  } finally { store.close(); }
}

/**
 * mosquitto's own password file (plain lines hashed in one `mosquitto_passwd -U` run) and ACL in `dir`: the devices,
 * and each hub its own user (the first gets the device patterns of mosquittoAcl; a hub of a cluster needs its own identity).
 */
export function enrollMosquitto(dir: string, ids: readonly string[], hubs: readonly { user: string; password: string }[]): StormDeviceSpec[] {
  const specs = ids.map((id) => ({ id, password: Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2) }));
  writeFileSync(join(dir, 'passwd'), [...specs.map((s) => `${s.id}:${s.password}`), ...hubs.map((h) => `${h.user}:${h.password}`)].join('\n') + '\n');
  execFileSync(MOSQUITTO_PASSWD_BIN, ['-U', join(dir, 'passwd')]);
  writeFileSync(join(dir, 'acl'), hubs.slice(1).map((h) => `user ${h.user}\ntopic readwrite fc/v1/#\n\n`).join('') + mosquittoAcl(hubs[0]!.user));
  return specs;
}

export async function runStorm(o: StormOptions): Promise<StormFigures> {
  const log = o.log ?? (() => {});
  const backoff = o.backoff ?? { baseMs: 500, capMs: 8_000 };
  const bound = o.boundMs ?? 120_000;
  const dir = benchDir(`storm-${o.broker}`);
  const keysDir = join(dir, 'keys');
  const keys = initKeys(keysDir);
  const dataDir = join(dir, 'data');
  const ids = Array.from({ length: o.devices }, (_, i) => `storm-${String(i).padStart(5, '0')}`);

  // Enrollment: one transaction; a salted SHA-256 per device (hub/mqtt-credentials.ts).
  let specs: StormDeviceSpec[];
  const hubPassword = 'storm-hub-' + Math.random().toString(36).slice(2);
  const t0 = Date.now();
  if (o.broker === 'embedded') specs = enrollEmbedded(dataDir, ids);
  else specs = enrollMosquitto(dir, ids, [{ user: HUB_MQTT_USER, password: hubPassword }]);
  const enrollMs = Date.now() - t0;
  log(`enrolled ${o.devices} devices in ${enrollMs} ms`);

  const httpPort = await freePort();
  const mqttPort = await freePort();
  let mosq: ChildProcess | undefined;
  const args = ['--data', dataDir, '--keys', keysDir, '--host', '127.0.0.1', '--http-port', String(httpPort), '--log-level', 'warn'];
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (o.broker === 'embedded') args.push('--mqtt-port', String(mqttPort));
  else {
    mosq = await startMosquitto(dir, mqttPort);
    args.push('--broker', `mqtt://127.0.0.1:${mqttPort}`, '--mqtt-username', HUB_MQTT_USER);
    env.FLEETCAST_MQTT_PASSWORD = hubPassword;
  }
  const fleet = new StormFleet(specs, `mqtt://127.0.0.1:${mqttPort}`, backoff);
  let hub: HubProc | undefined;
  let rssPeak = 0;
  let healthMax = 0;
  let healthFailures = 0;
  let stopProbe = false;
  // No probes while the hub is deliberately stopped and started.
  let restarting = false;
  const probe = (async () => {
    for (;;) {
      if (stopProbe) return;
      const h = hub;
      if (h && !h.exited && !restarting) {
        rssPeak = Math.max(rssPeak, peakRssMb(h.proc.pid));
        const t = Date.now();
        try {
          const r = await fetch(`${h.httpUrl}/v1/health`, { signal: AbortSignal.timeout(30_000) });
          if (!r.ok) healthFailures++;
          await r.arrayBuffer();
          healthMax = Math.max(healthMax, Date.now() - t);
        } catch { if (!h.exited) healthFailures++; }
      }
      await sleep(250);
    }
  })();
  const hubAlive = () => { if (hub?.exited) throw new Error(`the hub process exited (${hub.proc.exitCode ?? hub.proc.signalCode}) during the storm: ${hub.err().slice(-3000)}`); };
  const health = async () => (await (await fetch(`${hub!.httpUrl}/v1/health`)).json()) as { devices: number; messages: { handled: Record<string, number> }; broker: { faults?: number } };
  /** Every device connected, subscribed, its current report acknowledged; the hub handled as many reports; every device got its assignment since `since`. */
  const allBack = async (since: number | null) => {
    hubAlive();
    if (fleet.count((d) => d.connected && d.subscribed && d.ackedSeq === d.seq && (since === null || d.lastAssignAt >= since)) < o.devices) return false;
    const h = await health();
    return (h.messages.handled.state ?? 0) >= o.devices && h.devices === o.devices;
  };
  try {
    hub = await startHubProc(o.cli, args, env);
    const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
    const t1 = Date.now();
    fleet.start();
    await until(() => allBack(null), `${o.devices} devices to connect and report`, bound);
    const firstConnectMs = Date.now() - t1;
    log(`first connect of ${o.devices} devices: ${firstConnectMs} ms`);

    // A deployment to every device, so there are assignments to keep and to deliver again.
    const bundle = await buildBundle({ model: buildMlp({ seed: 7 }), name: 'storm', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'storm-1.fcb') });
    const auth = { authorization: `Bearer ${token}` };
    const pub = await fetch(`${hub.httpUrl}/v1/bundles`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: readFileSync(bundle.path) });
    if (!pub.ok) throw new Error(`publishing the bundle: ${pub.status} ${await pub.text()}`);
    const dep = await fetch(`${hub.httpUrl}/v1/deployments`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'storm', version: 1, all: true }) });
    if (!dep.ok) throw new Error(`deploying: ${dep.status} ${await dep.text()}`);
    await until(() => { hubAlive(); return fleet.count((d) => d.assigns > 0) === o.devices; }, 'every device to receive its assignment', bound);
    restarting = true;
    await stopHubProc(hub);
    const assignmentsBefore = (() => { const s = HubStore.open(dataDir); try { return s.listAssignments().length; } finally { s.close(); } })();

    // The restart: the old hub is gone (and with mosquitto, the broker restarts too); a new hub on the same folder and ports.
    const restartAt = Date.now();
    if (mosq) { await stopProc(mosq); mosq = await startMosquitto(dir, mqttPort); }
    hub = await startHubProc(o.cli, args, env);
    restarting = false;
    const restartMs = Date.now() - restartAt;
    await until(() => allBack(restartAt), `${o.devices} devices to come back after the restart`, bound);
    const backMs = Date.now() - restartAt;
    log(`all ${o.devices} devices back ${backMs} ms after the restart began (hub up after ${restartMs} ms)`);
    // Still serving after the storm.
    hubAlive();
    const brokerFaults = (await health()).broker.faults ?? 0;
    rssPeak = Math.max(rssPeak, peakRssMb(hub.proc.pid));
    const connects = fleet.devices.reduce((n, d) => n + d.connects, 0);
    stopProbe = true;
    await probe;
    fleet.stop();
    await stopHubProc(hub);
    const s = HubStore.open(dataDir);
    let persisted: StormFigures['persisted'];
    try {
      const seqOf = new Map(fleet.devices.map((d) => [d.spec.id, d.seq]));
      const devices = s.listDevices();
      persisted = {
        devices: devices.length,
        assignments: s.listAssignments().length,
        assignmentsBefore,
        reportsCurrent: devices.filter((d) => d.state.seq === seqOf.get(d.id)).length,
      };
    } finally { s.close(); }
    return {
      devices: o.devices, enrollMs, firstConnectMs, restartMs, backMs, hubRssPeakMb: rssPeak, healthMaxMs: healthMax, healthFailures,
      reconnectsPerDevice: connects / o.devices, brokerFaults, persisted,
    };
  } finally {
    stopProbe = true;
    await probe;
    fleet.stop();
    if (hub) await stopHubProc(hub);
    if (mosq) await stopProc(mosq);
  }
}

export async function benchReconnectStorm(): Promise<BenchResult> {
  const n = Number(process.env.FLEETCAST_STORM_DEVICES ?? 10_000);
  const cli = join(process.cwd(), 'cli/dist/fleetcast.js');
  const log = (l: string) => process.stderr.write(`reconnect-storm: ${l}\n`);
  const ours = await runStorm({ devices: n, broker: 'embedded', cli, log, boundMs: 300_000 });
  const hasMosquitto = MOSQUITTO_BIN !== '' && MOSQUITTO_PASSWD_BIN !== '';
  const base = hasMosquitto ? await runStorm({ devices: n, broker: 'mosquitto', cli, log, boundMs: 300_000 }) : undefined;
  const figures = (f: StormFigures) => ({ devices: f.devices, enrollMs: f.enrollMs, firstConnectMs: f.firstConnectMs, backMs: f.backMs, hubRssPeakMb: f.hubRssPeakMb, healthMaxMs: f.healthMaxMs, brokerFaults: f.brokerFaults });
  return {
    name: 'reconnect-storm',
    ours: figures(ours),
    baseline: base ? figures(base) : {},
    ratios: base ? [
      { name: 'back after restart, embedded aedes / mosquitto', value: ours.backMs / base.backMs },
      { name: 'hub RSS peak, embedded (hub + broker) / --broker mosquitto (hub only)', value: ours.hubRssPeakMb / base.hubRssPeakMb },
    ] : [],
    notes: [
      `${n} devices, raw MQTT, jittered capped backoff; embedded: ${fmt(ours.reconnectsPerDevice)} connects per device, ${ours.healthFailures} failed health probes; persisted after: ${JSON.stringify(ours.persisted)}`,
      ...(base ? [`mosquitto: ${fmt(base.reconnectsPerDevice)} connects per device, ${base.healthFailures} failed health probes; persisted after: ${JSON.stringify(base.persisted)}`] : ['mosquitto not installed: baseline skipped']),
    ],
  };
}
