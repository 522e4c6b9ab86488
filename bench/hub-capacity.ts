/**
 * How many devices one hub carries (issue "Outgrow one machine", Capacity): the compiled hub, secure (every
 * device with its own enrolled credential, ACL checked on every publish), embedded broker and SQLite, as
 * `fleetcast hub` runs by default, and N lightweight emulated devices (raw MQTT, bench/storm-fleet.ts) in
 * this process. For each control-plane operation the hub's own CPU time (utime + stime of its process, from
 * /proc, so the devices' work here is not counted) is measured over a burst of that operation and divided
 * per device: a state report, a telemetry report ingested, an assignment signed and sent, a chunk request
 * served (the bundle's chunks fanned out to the device). The baseline, same run: the hub's CPU while the
 * same devices are connected and silent.
 *
 * From the per-operation costs, the arithmetic: at the agent's default intervals (a state report and a
 * telemetry window per minute) one device costs c_state + c_telemetry CPU-seconds per minute of the hub's
 * event loop (one thread: the embedded broker, the hub's link and SQLite share it), so one hub sustains
 * 60 / (c_state + c_telemetry + c_idle) devices at 100 % of one core. Memory per connected device and the
 * process's file-descriptor limit bound it too; the result says which runs out first.
 *
 * `npm run bench -- hub-capacity`; FLEETCAST_CAPACITY_DEVICES (default 2,000) and FLEETCAST_CAPACITY_ROUNDS (5).
 *
 * With FLEETCAST_CAPACITY_STORE=postgres://USER@127.0.0.1:PORT/DB (a PostgreSQL on this machine, an empty
 * database) the same run is made with FLEETCAST_CAPACITY_HUBS hubs (default 2) of one cluster sharing that
 * store and a mosquitto started here (devices in its password file and ACL): the CPU counted is then the hub
 * processes' plus the PostgreSQL server's (its postmaster on that port and every backend), and mosquitto's
 * is shown beside it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { TelemetryWindow } from '@fleetcast/agent/telemetry/window.js';
import { encodeTelemetryBinary } from '@fleetcast/protocol/telemetry-binary.js';
import { compilePlan } from '@fleetcast/protocol/telemetry-plan.js';
import { topics } from '@fleetcast/protocol/topics.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { scenarioGenerator } from '@fleetcast/simulator/scenarios.js';
import { benchDir } from './dirs.js';
import { fmt, nowMs, type BenchResult } from './lib.js';
import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { enrollEmbedded, enrollMosquitto, freePort, peakRssMb, startHubProc, startMosquitto, stopHubProc, stopProc, until, type HubProc } from './reconnect-storm.js';
import { StormFleet, type StormDevice } from './storm-fleet.js';

const F = 32;
const TICKS = 100; // USER_HZ on Linux: /proc/PID/stat counts CPU time in 1/100 s

/** Fields of /proc/PID/stat after "pid (comm) ": [0] state, [1] ppid, … [11] utime, [12] stime. */
function statFields(pid: number): string[] | undefined {
  try { const stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); return stat.slice(stat.lastIndexOf(')') + 2).split(' '); } catch { return undefined; }
}

/** CPU seconds (user + system) the processes have used so far (a process gone meanwhile counts 0). */
function cpuSeconds(pids: readonly number[]): number {
  let t = 0;
  for (const pid of pids) { const f = statFields(pid); if (f) t += (Number(f[11]) + Number(f[12])) / TICKS; }
  return t;
}

/** The PostgreSQL server listening on `port` on this machine: its postmaster and every process it forked. */
function postgresPids(port: number): number[] {
  const all = readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d)).map(Number);
  const master = all.find((pid) => { try { const c = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'); return /postgres$/.test(c[0] ?? '') && c.includes(String(port)); } catch { return false; } });
  if (master === undefined) throw new Error(`no PostgreSQL postmaster with -p ${port} on this machine (FLEETCAST_CAPACITY_STORE must be a local server)`);
  return [master, ...all.filter((pid) => statFields(pid)?.[1] === String(master))];
}

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/** The process's soft and hard limits on open files (a socket each): the soft one can be raised up to the hard one (LimitNOFILE=). */
function fdLimits(pid: number): { soft: number; hard: number } {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  const v = (x: string | undefined) => (x === undefined || x === 'unlimited' ? Number.POSITIVE_INFINITY : Number(x));
  return { soft: v(m?.[1]), hard: v(m?.[2]) };
}

interface Phase { ops: number; cpuS: number; wallS: number }

export async function benchHubCapacity(): Promise<BenchResult> {
  const n = Number(process.env.FLEETCAST_CAPACITY_DEVICES ?? 2_000);
  const rounds = Number(process.env.FLEETCAST_CAPACITY_ROUNDS ?? 5);
  const log = (l: string) => process.stderr.write(`hub-capacity: ${l}\n`);
  const cli = join(process.cwd(), 'cli/dist/fleetcast.js');
  const dir = benchDir('hub-capacity');
  const keysDir = join(dir, 'keys');
  const keys = initKeys(keysDir);
  const dataDir = join(dir, 'data');
  const ids = Array.from({ length: n }, (_, i) => `cap-${String(i).padStart(6, '0')}`);
  const storeUrl = process.env.FLEETCAST_CAPACITY_STORE;
  const hubCount = storeUrl ? Number(process.env.FLEETCAST_CAPACITY_HUBS ?? 2) : 1;
  const hubUsers = Array.from({ length: hubCount }, (_, i) => ({ user: `fleetcast-hub-${i + 1}`, password: `cap-hub-${i}-${Math.random().toString(36).slice(2)}` }));
  // One hub: devices enrolled in its store. A cluster: in mosquitto's password file, with one user per hub.
  const specs = storeUrl ? enrollMosquitto(dir, ids, hubUsers) : enrollEmbedded(dataDir, ids);

  const names = Array.from({ length: F }, (_, i) => `x[${i}]`);
  const gen = scenarioGenerator({}, 6);
  const reference = Array.from({ length: 2000 }, () => Object.fromEntries(names.map((k) => [k, gen.value('ref', k, 0)])));
  // About 300 KiB compressed: two chunks of the default 256 KiB.
  const bundle = await buildBundle({ model: buildMlp({ features: F, hidden: 16, seed: 5, padFloats: 75_000 }), name: 'capacity', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'capacity-1.fcb'), reference });
  const chunkCount = bundle.manifest.payload.chunkHashes.length;
  const plan = compilePlan(bundle.bundleId, bundle.manifest);

  const mqttPort = await freePort();
  let mosq: ChildProcess | undefined;
  const hubs: HubProc[] = [];
  if (storeUrl) mosq = await startMosquitto(dir, mqttPort);
  for (let i = 0; i < hubCount; i++) {
    const args = ['--data', storeUrl ? join(dir, `hub-${i + 1}`) : dataDir, '--keys', keysDir, '--host', '127.0.0.1', '--http-port', String(await freePort()), '--log-level', 'warn'];
    if (storeUrl) args.push('--store', storeUrl, '--broker', `mqtt://127.0.0.1:${mqttPort}`, '--mqtt-username', hubUsers[i]!.user, '--cluster', '--mqtt-client-id', hubUsers[i]!.user);
    else args.push('--mqtt-port', String(mqttPort));
    hubs.push(await startHubProc(cli, args, { ...process.env, ...(storeUrl ? { FLEETCAST_MQTT_PASSWORD: hubUsers[i]!.password } : {}) }));
  }
  const hub = hubs[0]!;
  // What is counted: the hub processes (one with its embedded broker), and in a cluster the PostgreSQL server too.
  const pids = [...hubs.map((h) => h.proc.pid!), ...(storeUrl ? postgresPids(Number(new URL(storeUrl).port || 5432)) : [])];
  const pid = hub.proc.pid!;
  const token = readFileSync(join(storeUrl ? join(dir, 'hub-1') : dataDir, 'admin.token'), 'utf8').trim();
  const auth = { authorization: `Bearer ${token}` };
  type Health = { devices: number; messages: { handled: Record<string, number>; rejected: Record<string, number> } };
  const healthOf = async (h: HubProc) => (await (await fetch(`${h.httpUrl}/v1/health`)).json()) as Health;
  // Every hub's counts, summed (in a cluster each device message reaches one hub); devices from the shared store.
  const health = async (): Promise<Health> => {
    const all = await Promise.all(hubs.map(healthOf));
    const sum = (pick: (x: Health) => Record<string, number>) => all.reduce<Record<string, number>>((t, x) => { for (const [k, v] of Object.entries(pick(x))) t[k] = (t[k] ?? 0) + v; return t; }, {});
    return { devices: all[0]!.devices, messages: { handled: sum((x) => x.messages.handled), rejected: sum((x) => x.messages.rejected) } };
  };
  const alive = () => { for (const h of hubs) if (h.exited) throw new Error(`a hub exited: ${h.err().slice(-2000)}`); };
  if (storeUrl) await until(async () => (await Promise.all(hubs.map(async (h) => (await fetch(`${h.httpUrl}/v1/health`)).ok))).every(Boolean), 'the hubs to answer', 60_000);
  const fleet = new StormFleet(specs, `mqtt://127.0.0.1:${mqttPort}`, { baseMs: 200, capMs: 5_000 });
  const bound = 300_000;
  let brokerCpuS = 0;
  /** CPU and wall time of the hub while `work` runs and until `done` holds. */
  const measure = async (ops: number, work: () => void | Promise<void>, done: () => boolean | Promise<boolean>, what: string): Promise<Phase> => {
    const c0 = cpuSeconds(pids);
    const m0 = mosq ? cpuSeconds([mosq.pid!]) : 0;
    const t0 = nowMs();
    await work();
    await until(async () => { alive(); return done(); }, what, bound);
    brokerCpuS += mosq ? cpuSeconds([mosq.pid!]) - m0 : 0;
    return { ops, cpuS: cpuSeconds(pids) - c0, wallS: (nowMs() - t0) / 1000 };
  };
  try {
    const rssEmpty = rssMb(pid);
    // Connect: each device connects, subscribes to its assignment and sends its first (retained) state report.
    const connect = await measure(n, () => fleet.start(), async () => fleet.count((d) => d.connected && d.subscribed && d.ackedSeq === d.seq) === n && (await health()).devices === n, `${n} devices to connect`);
    log(`${n} connected in ${fmt(connect.wallS)} s`);
    const rssConnected = rssMb(pid);

    // Baseline: the same fleet connected and silent.
    const idle = await measure(0, () => new Promise((r) => setTimeout(r, 5_000)), () => true, 'idle');

    // State reports: one per device per round (a round ends when the hub handled them all, so none is coalesced).
    const handled = async (ch: string) => { const h = await health(); return (h.messages.handled[ch] ?? 0) + Object.values(h.messages.rejected).reduce((t, x) => t + x, 0); };
    let state: Phase = { ops: 0, cpuS: 0, wallS: 0 };
    for (let r = 0; r < rounds; r++) {
      const before = await handled('state');
      const p = await measure(n, () => { for (const d of fleet.devices) d.reportState(); }, async () => (await handled('state')) >= before + n, 'state reports handled');
      state = { ops: state.ops + p.ops, cpuS: state.cpuS + p.cpuS, wallS: state.wallS + p.wallS };
    }
    log(`state: ${state.ops} reports, ${fmt(state.cpuS)} CPU s`);

    // Publish the bundle (outside the measured phases), then telemetry: one window's binary report per device per round.
    const pub = await fetch(`${hub.httpUrl}/v1/bundles`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: readFileSync(bundle.path) });
    if (!pub.ok) throw new Error(`publishing: ${pub.status} ${await pub.text()}`);
    const now = Date.now();
    const w = new TelemetryWindow(plan, now - 60_000);
    for (let i = 0; i < 200; i++) {
      const x = Float32Array.from(names.map((k) => gen.value('cap', k, 0) as number));
      w.request(1 + (i % 9) / 4, true, { x: { type: 'float32', dims: [1, F], data: x } }, { y: { type: 'float32', dims: [1, 2], data: Float32Array.of(x[0], x[1]) } }, 0);
    }
    const body = w.body();
    let seq = 1;
    let telemetry: Phase = { ops: 0, cpuS: 0, wallS: 0 };
    let reportBytes = 0;
    for (let r = 0; r < rounds; r++) {
      const before = await handled('telemetry');
      seq++;
      const msgs = fleet.devices.map((d) => encodeTelemetryBinary({ v: 1, deviceId: d.spec.id, seq, to: now + r, part: 0, parts: 1, sampleRate: 1, dropped: 0, ...body }));
      reportBytes = msgs[0].length;
      const p = await measure(n, () => { fleet.devices.forEach((d, i) => d.send(topics.device(d.spec.id, 'telemetry'), Buffer.from(msgs[i]))); }, async () => (await handled('telemetry')) >= before + n, 'telemetry reports handled');
      telemetry = { ops: telemetry.ops + p.ops, cpuS: telemetry.cpuS + p.cpuS, wallS: telemetry.wallS + p.wallS };
    }
    const refused = (await health()).messages.rejected;
    log(`telemetry: ${telemetry.ops} reports of ${reportBytes} bytes, ${fmt(telemetry.cpuS)} CPU s, refused ${JSON.stringify(refused)}`);

    // Assignments: one deployment to every device; done when every device has received its signed assignment.
    const assignsBefore = fleet.devices.map((d) => d.assigns);
    const assign = await measure(n, async () => {
      const dep = await fetch(`${hub.httpUrl}/v1/deployments`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'capacity', version: 1, all: true }) });
      if (!dep.ok) throw new Error(`deploying: ${dep.status} ${await dep.text()}`);
    }, () => fleet.devices.every((d, i) => d.assigns > assignsBefore[i]), 'every assignment delivered');
    log(`assignments: ${n} in ${fmt(assign.wallS)} s, ${fmt(assign.cpuS)} CPU s`);

    // Chunk requests: every device subscribes to the bundle's chunks and asks for all of them, as an agent does.
    for (const d of fleet.devices) d.subscribe(topics.chunkFilter(bundle.bundleId));
    await new Promise((r) => setTimeout(r, 2_000));
    const req = Buffer.from(JSON.stringify({ v: 1, deviceId: '', bundleId: bundle.bundleId, chunks: Array.from({ length: chunkCount }, (_, i) => i) }));
    const chunk = await measure(n, () => {
      for (const d of fleet.devices) d.send(topics.device(d.spec.id, 'chunk-req'), Buffer.from(req.toString().replace('"deviceId":""', `"deviceId":${JSON.stringify(d.spec.id)}`)));
    }, () => fleet.count((d: StormDevice) => d.chunks >= chunkCount) === n, 'every device to receive every chunk');
    log(`chunks: ${n} devices × ${chunkCount} chunks in ${fmt(chunk.wallS)} s, ${fmt(chunk.cpuS)} CPU s`);
    const rssPeak = peakRssMb(pid);
    const fds = fdLimits(pid);

    // The arithmetic.
    const per = (p: Phase) => p.cpuS / Math.max(1, p.ops);
    const idlePerDevicePerMin = (idle.cpuS / idle.wallS) * 60 / n;
    const cState = per(state);
    const cTel = per(telemetry);
    const perDeviceMinute = cState + cTel + idlePerDevicePerMin;
    const byCpu = 60 / perDeviceMinute;
    const mbPerDevice = (rssConnected - rssEmpty) / n;
    const freeMb = Number(/MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) / 1024;
    const byMemory = (freeMb + rssConnected) / Math.max(mbPerDevice, 1e-6);
    // With --broker a hub holds one connection, not one per device: no limit from its descriptors.
    const byFds = storeUrl ? Number.POSITIVE_INFINITY : fds.soft - 100; // a few for the API, the database and logs
    const limits = [['CPU (one event loop)', byCpu], ['memory (available now)', byMemory], ['open files (ulimit -n)', byFds]] as const;
    const first = [...limits].sort((a, b) => a[1] - b[1])[0];
    const rolloutS = (per(assign) + per(chunk)) * 100_000;
    return {
      name: storeUrl
        ? `hub-capacity: ${hubCount} hubs of one cluster (compiled, --store PostgreSQL, --broker mosquitto with password file and ACL), ${n} emulated devices, ${rounds} rounds per report kind; CPU = hubs + PostgreSQL`
        : `hub-capacity: one hub (compiled, secure, embedded broker + SQLite), ${n} emulated devices, ${rounds} rounds per report kind`,
      ours: {
        'state report, CPU µs': cState * 1e6,
        'telemetry report, CPU µs': cTel * 1e6,
        'assignment signed+sent, CPU µs': per(assign) * 1e6,
        'chunk request served, CPU µs': per(chunk) * 1e6,
        'connect, CPU µs': per(connect) * 1e6,
        'RSS per device, KiB': mbPerDevice * 1024,
        'devices by CPU': byCpu,
        'devices by memory': byMemory,
        'devices by open files': byFds,
      },
      baseline: {
        'idle, CPU µs/device/min': idlePerDevicePerMin * 1e6,
        'state reports/s (wall)': state.ops / state.wallS,
        'telemetry reports/s (wall)': telemetry.ops / telemetry.wallS,
        'assignments/s (wall)': n / assign.wallS,
      },
      ratios: [
        { name: '100,000 / devices one hub sustains (goal ≤ 1)', value: 100_000 / Math.min(byCpu, byMemory, byFds), goal: 1 },
        { name: '100,000 / devices by CPU alone', value: 100_000 / byCpu },
      ],
      notes: [
        `per device per minute at the defaults (state report every 60 s, telemetry window of 60 s): ${fmt(cState * 1e6, 0)} + ${fmt(cTel * 1e6, 0)} + ${fmt(idlePerDevicePerMin * 1e6, 0)} (idle, all of it charged to the devices) = ${fmt(perDeviceMinute * 1e6, 0)} µs of CPU${storeUrl ? ` (${hubCount} hubs and PostgreSQL together)` : ''}; 60 s / that = ${fmt(byCpu, 0)} devices per core${storeUrl ? ' of control-plane CPU, spread over the hubs and the database' : ' (the hub\'s one event loop)'}`,
        `memory: RSS ${fmt(rssEmpty, 0)} MB before the fleet, ${fmt(rssConnected, 0)} MB with ${n} connected → ${fmt(mbPerDevice * 1024, 1)} KiB per device; ${fmt(freeMb, 0)} MB available → ${fmt(byMemory, 0)} devices; peak RSS ${fmt(rssPeak, 0)} MB`,
        storeUrl ? `open files: each hub holds one broker connection (the broker holds the devices' sockets: its own limit, not measured here)` : `open files: the hub's soft limit is ${fds.soft} (hard ${fds.hard}); the embedded broker holds one socket per device → ${byFds} devices until the soft limit is raised (systemd LimitNOFILE=, ulimit -n), at most ${fds.hard - 100}`,
        `runs out first: ${first[0]}, at about ${fmt(first[1], 0)} devices`,
        `a rollout to 100,000 devices costs (assignment ${fmt(per(assign) * 1e6, 0)} + chunks ${fmt(per(chunk) * 1e6, 0)} µs) × 100,000 = ${fmt(rolloutS, 0)} CPU s (${chunkCount} chunks, ${bundle.manifest.payload.compressedLength} bytes per device)`,
        `telemetry report: ${reportBytes} bytes, ${F} features, 200-request window; ingest on the hub thread (telemetry.ingestWorkers 0, the default)`,
        `2 shared cores: the emulated devices run in the bench process beside the hub; CPU is the hub process's own${storeUrl ? ` plus PostgreSQL's (${pids.length - hubCount} server processes); mosquitto used ${fmt(brokerCpuS)} CPU s over the measured phases, not counted` : ''}`,
      ],
    };
  } finally {
    fleet.stop();
    for (const h of hubs) await stopHubProc(h);
    if (mosq) await stopProc(mosq);
  }
}

