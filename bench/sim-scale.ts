/**
 * `node dist/bench/run.js sim-scale`: how many simulated devices one process
 * holds, and what an install costs them against a plain download.
 *
 * The measured side: the compiled hub (cli/dist/fleetcast.js hub) in its own
 * process, authentication on, every device enrolled with its own MQTT
 * credential; in this process a fleet of real agents (simulator/fleet.ts) on
 * in-memory storage (agent/memory-storage.ts), grown to 1,000, 5,000 and
 * 10,000 devices. At each size, once every device has connected and the hub
 * has its report, memory is read after two full GCs (the runner starts node
 * without --expose-gc; V8's flag is set at run time and gc() taken from a
 * fresh context): RSS and heapUsed, minus the same reading taken before the
 * first device started (root, runtime and modules loaded). Then a 1 MB bundle
 * is deployed to all 10,000: from the deploy call until every agent serves it
 * (each verified the signed assignment, fetched every chunk over its own
 * connection, checked and staged it, decompressed, loaded, smoke-tested and
 * swapped), and memory is read again.
 *
 * The baseline, in the same run: the same bytes in the same chunk size, QoS 1,
 * the hub's number of publishes in flight, published by a plain client
 * through the same kind of embedded broker in its own process
 * (plain-broker-worker.ts) to 10,000 raw mqtt.js subscribers in this process:
 * from the first publish until every subscriber holds every chunk. Its
 * subscribers' connect time and memory per subscriber are measured the same way.
 *
 * Loopback only; every wait is bounded; the hub and the broker process are
 * stopped at the end whatever happened. FLEETCAST_SIM_SCALE_STEPS=100,500
 * runs smaller steps (the last one installs). FLEETCAST_SIM_SCALE_PLAIN_BESIDE_FLEET=1 also runs the plain
 * download once more while the installed fleet is still in the process (a note: what the shared heap alone costs).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import mqtt from 'mqtt';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { readBundleBuffer } from '@fleetcast/bundles/read.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { MqttCredentials } from '@fleetcast/hub/mqtt-credentials.js';
import { HubStore } from '@fleetcast/hub/store.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { startFleet, type Fleet } from '@fleetcast/simulator/fleet.js';
import { keepAliveWhileReceiving } from '@fleetcast/agent/broker-client.js';
import { benchDir } from './dirs.js';
import { fmt, nowMs, phaseSpread, type BenchResult } from './lib.js';
import { freePort, startHubProc, stopHubProc, until, type HubProc } from './reconnect-storm.js';

// ~1 MB of incompressible float32 weights.
const PAD_FLOATS = 280_000;
/** Connections opened at once, by the fleet and by the baseline alike: a connection storm is bench reconnect-storm. */
const CONNECT_STEP = 50;
/** The hub's default publishes in flight per bundle (hub/options.ts maxInflightChunkPublishes). */
const INFLIGHT = 8;
const BOUND_MS = 900_000;
/**
 * The agents' no-progress timeout. One CPU delivers every device's chunks here: a device waits its turn behind
 * 10,000 others for minutes where a real one waits seconds, and each retry re-sends the chunks to every device
 * still subscribed (FLEETCAST_SIM_SCALE_CHUNK_TIMEOUT_MS).
 */
const CHUNK_TIMEOUT_MS = Number(process.env.FLEETCAST_SIM_SCALE_CHUNK_TIMEOUT_MS ?? 300_000);
/**
 * The agents' MQTT keepalive. Their timers share the one loop that reads 10,000 connections: under the install's
 * load one fired 40 s late, and a ping due at 60 s reached the broker after its 90 s limit, which closed the
 * connection (3,900 of 10,000 at once in a run with 60 s).
 */
const KEEPALIVE_SEC = 300;
/**
 * Both brokers' drain timeout (hub option brokerDrainTimeoutMs, aedes' drainTimeout, default 60 s): how long a
 * client's socket may stay full before the broker drops it. One process reads all 10,000 connections here, so a
 * socket waits its turn for minutes; with 60 s the hub's broker dropped 8,000 devices at once mid-install
 * ("drain timeout"), each then asked again and every re-sent chunk went to every device still subscribed.
 */
const DRAIN_TIMEOUT_MS = 600_000;
/**
 * The hub's first-flush wait (--chunk-expect-wait-ms, --chunk-expect-max-wait-ms; defaults 3 s and 30 s). One
 * process verifies every device's assignment, so the fleet's chunk requests come over up to tens of seconds, with
 * pauses longer than 3 s when the process collects garbage or the hub signs the next batch: a first flush sent in
 * such a pause reached only the devices subscribed by then, and each later flush went again to every device still
 * receiving the first (7 flushes of 4 chunks at 5,000 under load 8, every device receiving the bundle up to 7 times,
 * the install 330 s against 19.5 s). Here the first flush waits until every assigned device has asked, or none has
 * for 60 s: one flush for the fleet, as the baseline's one publish of each chunk. Every device asks here, so the
 * long silence never adds to the install; it only keeps a stalled loop (the hub's or the fleet's) from starting
 * the flush early.
 */
const EXPECT_WAIT_MS = 60_000;
const EXPECT_MAX_WAIT_MS = 180_000;
/**
 * FLEETCAST_SIM_SCALE_SHARE_RECEIVE=0: the agents' framers copy every received chunk as a device's does, instead of
 * handing on the fleet's reference for bytes equal to it (simulator/fleet.ts shareReceive; an A/B switch).
 */
const SHARE_RECEIVE = process.env.FLEETCAST_SIM_SCALE_SHARE_RECEIVE !== '0';
/** How long the install may take (FLEETCAST_SIM_SCALE_INSTALL_BOUND_MS); past it the table says how far it got. */
const INSTALL_BOUND_MS = Number(process.env.FLEETCAST_SIM_SCALE_INSTALL_BOUND_MS ?? 1_200_000);

interface Reading { rss: number; heapUsed: number; external: number }

/** gc() although node was started without --expose-gc (V8 reads the flag when a new context is made). */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

async function settle(gc: () => void): Promise<Reading> {
  for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setTimeout(r, 200)); }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}

const mb = (b: number) => b / (1024 * 1024);

interface Row { label: string; devices: number; connectMs: number; rssPerDevice: number; heapPerDevice: number; extPerDevice: number; rss: number }

function row(label: string, devices: number, connectMs: number, base: Reading, r: Reading): Row {
  return {
    label, devices, connectMs, rss: mb(r.rss),
    rssPerDevice: mb(r.rss - base.rss) / devices, heapPerDevice: mb(r.heapUsed - base.heapUsed) / devices, extPerDevice: mb(r.external - base.external) / devices,
  };
}

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); })]).finally(() => clearTimeout(timer));
}

/** Bytes this process read and wrote through system calls so far (/proc/self/io; sockets included): what each side actually moved. */
interface Io { read: number; written: number; writeCalls: number }
function ioBytes(): Io {
  try {
    const t = readFileSync('/proc/self/io', 'utf8');
    const f = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(t)?.[1] ?? Number.NaN);
    return { read: f('rchar'), written: f('wchar'), writeCalls: f('syscw') };
  } catch { return { read: Number.NaN, written: Number.NaN, writeCalls: Number.NaN }; }
}

/** Write calls are about one per MQTT packet sent (each is written on its own; no Nagle on the agents' sockets). */
const ioNote = (what: string, a: Io, b: Io, n: number) =>
  `${what}: this process read ${fmt((b.read - a.read) / 1e6, 0)} MB (${fmt((b.read - a.read) / n / 1e3, 0)} KB per device) and wrote ${fmt((b.written - a.written) / 1e6, 1)} MB (${fmt((b.written - a.written) / n, 0)} B per device) in ${fmt((b.writeCalls - a.writeCalls) / n, 1)} write calls per device`;

/** CPU seconds (user + system) a process has used so far: this one, or a child by pid (/proc/PID/stat). */
function cpuSeconds(pid?: number): number {
  if (pid === undefined) { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; }
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th, in clock ticks.
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch { return Number.NaN; }
}

/** CPU seconds of this process so far: its main thread (the event loop) and the others together (V8's GC and compiler helpers, libuv's pool, onnxruntime's). */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        const name = Number(tid) === process.pid ? 'main thread' : 'other threads';
        const f = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
        out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
      } catch { /* the thread ended meanwhile */ }
    }
  } catch { /* no /proc */ }
  return out;
}

/** Where this process's CPU went between two threadCpu() readings (threads that ended in between are missed). */
function threadNote(a: Map<string, number>, b: Map<string, number>): string {
  return [...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const).filter(([, v]) => v >= 0.05).sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${fmt(v, 1)} s`).join(', ');
}

const TCP_STATES: Record<string, string> = { '01': 'established', '06': 'time-wait', '08': 'close-wait', '04': 'fin-wait1', '05': 'fin-wait2', '09': 'last-ack' };

/**
 * Loopback sockets of this port by state and side (/proc/net/tcp): time-wait sockets are connections
 * closed in the last minute, on the side that closed first (the broker's when it is "broker").
 */
function socketStates(port: number): Record<string, number> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const out: Record<string, number> = {};
  let text = '';
  try { text = readFileSync('/proc/net/tcp', 'utf8'); } catch { return out; }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const side = f[1].endsWith(`:${hex}`) ? 'broker' : f[2].endsWith(`:${hex}`) ? 'device' : null;
    if (!side) continue;
    const k = `${side} ${TCP_STATES[f[3]] ?? f[3]}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** How long the fleet may take to stop before the run goes on to the baseline without it. */
const STOP_BOUND_MS = 120_000;

/** Stop every agent, bounded: an agent whose stop never settles must not hang the run; the note says which and where they were. */
async function stopWithin(f: Fleet, ms: number): Promise<string> {
  const done = new Array<boolean>(f.agents.length).fill(false);
  const t0 = nowMs();
  try {
    await within(ms, 'the fleet to stop', Promise.all(f.agents.map((a, i) => a.stop().catch(() => {}).finally(() => { done[i] = true; }))));
    return `fleet stopped in ${fmt(nowMs() - t0, 0)} ms`;
  } catch {
    const stuck = f.agents.flatMap((a, i) => (done[i] ? [] : [`${f.ids[i]} (${a.status().phase}, ${a.status().active?.version ?? 'none'})`]));
    return `${stuck.length} agents had not stopped ${ms} ms after stop(): ${stuck.slice(0, 10).join(', ')}${stuck.length > 10 ? ', …' : ''}`;
  }
}

interface PlainFigures { connectMs: number; downloadMs: number; memory: Row; io: string; cpu: string }

/** The baseline: N raw subscribers of a plain publisher through an embedded broker in its own process. */
export async function plainDownload(payloadFile: string, bytes: number, chunkSize: number, n: number, gc: () => void): Promise<PlainFigures> {
  const worker = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'plain-broker-worker.js'), String(DRAIN_TIMEOUT_MS)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: worker.stdout! });
  const waiters: ((line: string) => void)[] = [];
  lines.on('line', (l) => waiters.shift()?.(l));
  const next = () => new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the plain broker process did not answer in time')), BOUND_MS);
    waiters.push((l) => { clearTimeout(t); resolve(l); });
  });
  const subs: mqtt.MqttClient[] = [];
  let progress: NodeJS.Timeout | undefined;
  try {
    const url = (await next()).replace(/^url /, '');
    const chunks = Math.ceil(bytes / chunkSize);
    const base = await settle(gc);
    let done = 0;
    let resolveAll!: () => void;
    const all = new Promise<void>((r) => { resolveAll = r; });
    const counts = { closed: 0, errors: 0, chunks: 0, lastError: '' };
    progress = setInterval(() => {
      const m = process.memoryUsage();
      process.stderr.write(`sim-scale plain: ${subs.length} subscribed, ${done} complete, ${counts.chunks} chunks in, ${counts.closed} closed, ${counts.errors} errors ${counts.lastError}; rss ${fmt(mb(m.rss), 0)} MB\n`);
    }, 10_000);
    const t0 = nowMs();
    for (let i = 0; i < n; i += CONNECT_STEP) {
      // Bounded: a connection that neither opens nor fails must end the run, not hang it.
      await within(BOUND_MS, `${n} raw subscribers to connect (${subs.length} did)`, Promise.all(Array.from({ length: Math.min(CONNECT_STEP, n - i) }, async (_, k) => {
        const c = await mqtt.connectAsync(url, { clientId: `plain-${i + k}`, reconnectPeriod: 0, connectTimeout: 60_000 });
        // mqtt.js counts only acks and PINGRESP as signs of a live broker, not the chunks themselves: past 60 s a
        // subscriber pinged, its PINGRESP queued behind the chunks the broker was still writing to it, and 30 s
        // later it closed its own connection ("Keepalive timeout") and never got every chunk (the hang at 10,000).
        // The agents' rule (agent/broker-client.ts): bytes arriving keep the connection.
        keepAliveWhileReceiving(c);
        const got = new Set<number>();
        c.on('close', () => { counts.closed++; });
        c.on('error', (e) => { counts.errors++; counts.lastError = e.message; });
        c.on('message', (topic) => {
          counts.chunks++;
          const idx = Number(topic.slice(topic.lastIndexOf('/') + 1));
          if (got.has(idx)) return;
          got.add(idx);
          if (got.size === chunks && ++done === n) resolveAll();
        });
        await c.subscribeAsync('bench/chunk/+', { qos: 1 });
        subs.push(c);
      })));
    }
    const connectMs = nowMs() - t0;
    const memory = row('raw MQTT subscribers', n, connectMs, base, await settle(gc));
    const io0 = ioBytes();
    const cpu0 = { subs: cpuSeconds(), broker: cpuSeconds(worker.pid), threads: threadCpu() };
    const t1 = nowMs();
    process.stderr.write(`sim-scale plain [${fmt(process.uptime(), 1)} s]: publishing\n`);
    worker.stdin!.write(`publish ${payloadFile} ${chunkSize} ${INFLIGHT}\n`);
    await within(BOUND_MS, `the plain download to ${n} subscribers`, all);
    const downloadMs = nowMs() - t1;
    const cpu = `plain download CPU: subscribers' process ${fmt(cpuSeconds() - cpu0.subs, 1)} s, broker's ${fmt(cpuSeconds(worker.pid) - cpu0.broker, 1)} s in ${fmt(downloadMs / 1000, 1)} s; subscribers' threads: ${threadNote(cpu0.threads, threadCpu())}`;
    return { connectMs, downloadMs, memory, io: ioNote('plain download', io0, ioBytes(), n), cpu };
  } finally {
    clearInterval(progress);
    await Promise.all(subs.map((s) => s.endAsync().catch(() => {})));
    worker.stdin!.end();
    if (worker.exitCode === null) await new Promise((r) => { worker.once('exit', r); setTimeout(() => { worker.kill('SIGKILL'); }, 10_000).unref(); });
  }
}

export async function benchSimScale(): Promise<BenchResult> {
  const steps = (process.env.FLEETCAST_SIM_SCALE_STEPS ?? '1000,5000,10000').split(',').map(Number).filter((x) => Number.isInteger(x) && x > 0);
  const n = steps[steps.length - 1];
  const gc = collector();
  const log = (l: string) => process.stderr.write(`sim-scale [${fmt(process.uptime(), 1)} s]: ${l}\n`);
  const dir = benchDir('sim-scale');
  const keysDir = join(dir, 'keys');
  const keys = initKeys(keysDir);
  const dataDir = join(dir, 'hub');
  const width = String(n - 1).length;
  const idOf = (i: number) => `scale-${String(i).padStart(width, '0')}`;

  // Each device enrolled with its own credential before the hub starts (one transaction; as bench reconnect-storm).
  const passwords: string[] = [];
  {
    const store = HubStore.open(dataDir);
    try {
      const creds = new MqttCredentials(store.db);
      store.db.transaction(() => { for (let i = 0; i < n; i++) passwords.push(creds.enrollDevice(idOf(i)).password); })();
    } finally { store.close(); }
  }
  const modelPath = join(dir, 'model.onnx');
  writeFileSync(modelPath, buildMlp({ features: 8, categorical: true, seed: 9, padFloats: PAD_FLOATS }));
  const bundle = await buildBundle({ model: modelPath, name: 'scale', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'scale-1.fcb') });
  const { payload } = readBundleBuffer(readFileSync(bundle.path));
  const payloadFile = join(dir, 'payload.zst');
  writeFileSync(payloadFile, payload);
  const chunkSize = bundle.manifest.payload.chunkSize;

  const cli = join(process.cwd(), 'cli/dist/fleetcast.js');
  const httpPort = await freePort();
  const mqttPort = await freePort();
  let hub: HubProc | undefined;
  let fleet: Fleet | undefined;
  const rows: Row[] = [];
  let installMs = 0;
  let connectTotal = 0;
  const phaseAt: Record<string, number[]> = {};
  const phaseCounts: Record<string, number> = {};
  let t1 = 0;
  let deployNote = '';
  let installNote = '';
  let receiveNote = '';
  let transferNote = '';
  let stopNote = '';
  let installIo = '';
  let besideNote = '';
  let installCpu = '';
  try {
    hub = await startHubProc(cli, ['--data', dataDir, '--keys', keysDir, '--host', '127.0.0.1', '--http-port', String(httpPort), '--mqtt-port', String(mqttPort), '--log-level', 'warn', '--broker-drain-timeout-ms', String(DRAIN_TIMEOUT_MS), '--chunk-expect-wait-ms', String(EXPECT_WAIT_MS), '--chunk-expect-max-wait-ms', String(EXPECT_MAX_WAIT_MS)], { ...process.env });
    const h = hub;
    const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
    const auth = { authorization: `Bearer ${token}` };
    const hubHealth = async () => {
      if (h.exited) throw new Error(`the hub exited: ${h.err().slice(-2000)}`);
      return (await (await fetch(`${h.httpUrl}/v1/health`)).json()) as { devices: number; transfer?: Record<string, number> };
    };
    const hubDevices = async () => (await hubHealth()).devices;
    fleet = await startFleet({
      brokerUrl: `mqtt://127.0.0.1:${mqttPort}`, agents: 0, idPrefix: 'scale', idWidth: width, rootPath: keys.rootPath, dataDir: join(dir, 'fleet'),
      storage: 'memory', startConcurrency: CONNECT_STEP, shareReceive: SHARE_RECEIVE,
      // One CPU runs every device here: a fleet's chunk deadlines and its slow-retrieval floor (bytes per second over a
      // minute) are for devices that receive in parallel, not for 10,000 sharing one core with the broker's fan-out.
      agentOptions: { chunkTimeoutMs: CHUNK_TIMEOUT_MS, connectTimeoutMs: 60_000, minTransferBytesPerSec: 0, mqttKeepaliveSec: KEEPALIVE_SEC },
      agentOptionsFor: (i, deviceId) => ({ mqttUsername: deviceId, mqttPassword: passwords[i] }),
    });
    const f = fleet;
    const base = await settle(gc);
    log(`base: rss ${fmt(mb(base.rss))} MB, heap ${fmt(mb(base.heapUsed))} MB`);
    for (const size of steps) {
      const t0 = nowMs();
      await f.grow(size - f.agents.length);
      await until(async () => (await hubDevices()) >= size, `${size} devices to connect and report`, BOUND_MS);
      const ms = nowMs() - t0;
      connectTotal += ms;
      const r = row(`${size} connected`, size, connectTotal, base, await settle(gc));
      rows.push(r);
      log(`${size} devices connected (${fmt(ms, 0)} ms for this step); per device: RSS ${fmt(r.rssPerDevice, 3)} MB, heap ${fmt(r.heapPerDevice, 3)} MB, external ${fmt(r.extPerDevice, 3)} MB`);
    }
    // When each agent first enters each phase of the install ('verifying': every chunk received and checked).
    f.agents.forEach((a) => {
      const seen = new Set<string>();
      a.on('state', (r) => { if (t1 && !seen.has(r.phase)) { seen.add(r.phase); (phaseAt[r.phase] ??= []).push(nowMs() - t1); phaseCounts[r.phase] = (phaseCounts[r.phase] ?? 0) + 1; } });
    });
    const pub = await fetch(`${h.httpUrl}/v1/bundles`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: readFileSync(bundle.path) });
    if (!pub.ok) throw new Error(`publishing the bundle: ${pub.status} ${await pub.text()}`);
    const io0 = ioBytes();
    const cpu0 = { fleet: cpuSeconds(), hub: cpuSeconds(h.proc.pid), threads: threadCpu() };
    t1 = nowMs();
    log('deploying');
    const dep = await fetch(`${h.httpUrl}/v1/deployments`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'scale', version: 1, all: true }) });
    // 503 HUB_ERR_BROKER_UNREACHABLE: every assignment is signed, stored and published, and some PUBACKs came later than
    // the hub's publish timeout (the broker delivers to 10,000 clients); the hub retries those, the fleet is waited for below.
    const deployText = await dep.text();
    if (!dep.ok && !(dep.status === 503 && deployText.includes('HUB_ERR_BROKER_UNREACHABLE'))) throw new Error(`deploying: ${dep.status} ${deployText}`);
    if (!dep.ok) deployNote = `the deploy call answered ${dep.status}: ${deployText.slice(0, 300)}`;
    // FLEETCAST_SIM_SCALE_PROBE=1: every second, how many event-loop turns the fleet's process made and the longest.
    // While the chunks stream in, one turn lasts tens of seconds (libuv reads every ready socket before it runs timers
    // and setImmediate): the agents' setImmediate steps (session load, smoke runs) wait for the transfer to end.
    const probe = { turns: 0, maxGap: 0, last: performance.now(), on: true };
    const spin = () => { const t = performance.now(); probe.maxGap = Math.max(probe.maxGap, t - probe.last); probe.last = t; probe.turns++; if (probe.on) setImmediate(spin); };
    if (process.env.FLEETCAST_SIM_SCALE_PROBE) setImmediate(spin);
    const probeLog = process.env.FLEETCAST_SIM_SCALE_PROBE ? setInterval(() => { log(`loop: ${probe.turns} turns, longest ${fmt(probe.maxGap, 0)} ms; ${JSON.stringify(phaseCounts)}`); probe.turns = 0; probe.maxGap = 0; }, 1000) : undefined;
    const watch = setInterval(() => {
      void hubHealth().then((hh) => log(`install: ${fmt(nowMs() - t1, 0)} ms, ${JSON.stringify(f.versions())}, hub transfer ${JSON.stringify(hh.transfer ?? {})}, sockets ${JSON.stringify(socketStates(mqttPort))}`), () => {});
    }, 20_000);
    try {
      await f.waitForVersion('scale', 1, INSTALL_BOUND_MS);
      installMs = nowMs() - t1;
      installIo = ioNote('install', io0, ioBytes(), n);
      installCpu = `install CPU: fleet's process ${fmt(cpuSeconds() - cpu0.fleet, 1)} s, hub's ${fmt(cpuSeconds(h.proc.pid) - cpu0.hub, 1)} s in ${fmt(installMs / 1000, 1)} s; fleet's threads: ${threadNote(cpu0.threads, threadCpu())}`;
      log(`${n} devices serve the bundle ${fmt(installMs, 0)} ms after the deploy`);
      transferNote = `hub chunk server: ${JSON.stringify((await hubHealth()).transfer ?? {})} (each flush publishes to every device subscribed at the time)`;
    } catch {
      // Bounded: the table still says what was measured, and how far the install got.
      installMs = Number.NaN;
      installNote = `the install did not complete within ${INSTALL_BOUND_MS} ms: ${JSON.stringify(f.versions())}; hub: ${JSON.stringify(await hubHealth().catch(() => null))}`;
      log(installNote);
    } finally {
      clearInterval(watch);
      probe.on = false;
      clearInterval(probeLog);
    }
    rows.push(row(`${n} installed`, n, connectTotal, base, await settle(gc)));
    if (process.env.FLEETCAST_SIM_SCALE_PLAIN_BESIDE_FLEET) {
      // The same raw download while the fleet's devices are still in this process (connected, idle): how much of the
      // install's extra time one shared heap costs by itself (each collection marks every device's objects).
      const heapMb = mb(process.memoryUsage().heapUsed);
      const beside = await plainDownload(payloadFile, payload.length, chunkSize, n, gc);
      besideNote = `plain download beside the fleet (its ${n} devices still in this process, heap ${fmt(heapMb, 0)} MB): ${fmt(beside.downloadMs, 0)} ms`;
      log(besideNote);
    }
  } finally {
    if (fleet) {
      receiveNote = `received chunks ${SHARE_RECEIVE ? 'compared in place with the fleet\'s references (shareReceive)' : 'copied by every device (FLEETCAST_SIM_SCALE_SHARE_RECEIVE=0)'}; the shared check took ${JSON.stringify(fleet.payloadStats ?? {})} (by identity: a reference's own verdict, hashed once per reference; by memcmp with a reference; hashed)`;
      log(receiveNote);
      stopNote = await stopWithin(fleet, STOP_BOUND_MS); log(stopNote);
    }
    if (hub) await stopHubProc(hub);
  }
  fleet = undefined;
  const plain = await plainDownload(payloadFile, payload.length, chunkSize, n, gc);
  log(`plain: ${n} subscribers connected in ${fmt(plain.connectMs, 0)} ms, download ${fmt(plain.downloadMs, 0)} ms`);

  const out = process.stdout;
  out.write(`\n## sim-scale table (MB per device beyond the base, after GC)\n`);
  out.write(`  ${'devices'.padEnd(26)} ${'connect ms'.padStart(10)} ${'RSS/dev'.padStart(9)} ${'heap/dev'.padStart(9)} ${'ext/dev'.padStart(9)} ${'RSS MB'.padStart(8)}\n`);
  for (const r of [...rows, plain.memory]) {
    out.write(`  ${r.label.padEnd(26)} ${fmt(r.connectMs, 0).padStart(10)} ${fmt(r.rssPerDevice, 3).padStart(9)} ${fmt(r.heapPerDevice, 3).padStart(9)} ${fmt(r.extPerDevice, 3).padStart(9)} ${fmt(r.rss, 0).padStart(8)}\n`);
  }
  out.write(`  install of ${fmt(payload.length / 1e6, 2)} MB to ${n}: ${fmt(installMs, 0)} ms; plain download to ${n} raw subscribers: ${fmt(plain.downloadMs, 0)} ms\n`);
  const worst = Math.max(...rows.map((r) => r.rssPerDevice));
  return {
    name: `sim-scale: ${n} simulated devices in one process, ${fmt(payload.length / 1e6, 2)} MB bundle`,
    ours: { 'connect ms': connectTotal, 'install ms': installMs, 'MB RSS per device (worst)': worst },
    baseline: { 'connect ms': plain.connectMs, 'install ms': plain.downloadMs, 'MB RSS per device (worst)': plain.memory.rssPerDevice },
    ratios: [
      { name: 'install/plain download', value: installMs / plain.downloadMs, goal: 1.5 },
      { name: 'connect/raw connect', value: connectTotal / plain.connectMs },
      { name: 'MB RSS per device', value: worst, goal: 0.5 },
    ],
    notes: [
      ...(deployNote ? [deployNote] : []),
      ...(installNote ? [installNote] : []),
      ...(transferNote ? [transferNote] : []),
      ...(stopNote ? [stopNote] : []),
      ...(installIo ? [installIo] : []),
      ...(besideNote ? [besideNote] : []),
      ...(receiveNote ? [receiveNote] : []),
      ...(installCpu ? [installCpu] : []),
      plain.io,
      plain.cpu,
      `agents entering each phase, ms after the deploy (first/median/last): ${Object.keys(phaseAt).length ? phaseSpread(phaseAt) : 'none'}`,
      `memory: process.memoryUsage() after 3 GCs (gc() enabled at run time), minus the base read before the first device started; ext = external (Buffers, native)`,
      `ours: the compiled hub in its own process (authentication on, ${n} enrolled credentials, embedded aedes), the fleet in this one on in-memory storage; chunkTimeoutMs ${CHUNK_TIMEOUT_MS} and minTransferBytesPerSec 0 (one CPU serves every device)`,
      `both brokers: drain timeout ${DRAIN_TIMEOUT_MS} ms; agents: MQTT keepalive ${KEEPALIVE_SEC} s; the hub's first flush waits for every assigned device's request (none for ${EXPECT_WAIT_MS} ms, at most ${EXPECT_MAX_WAIT_MS} ms)`,
      `baseline: a plain publisher and aedes (no access control) in their own process, ${n} raw mqtt.js subscribers here; ${Math.ceil(payload.length / chunkSize)} chunks of ${chunkSize} bytes, QoS 1, ${INFLIGHT} publishes in flight on both sides; connects ${CONNECT_STEP} at a time on both sides`,
    ],
  };
}
