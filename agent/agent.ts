/**
 * The device agent: wires the state store, the model runtime, the installer,
 * the reporter, the MQTT dispatcher and the predict API together.
 *
 * Start-up order matters: the persisted active model is re-verified from disk
 * and served BEFORE any network is touched, so a device that reboots while
 * its broker is down still answers predictions.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { errorCode } from '../protocol/errors.js';
import type { StateReport } from '../protocol/messages.js';
import { parseTopic, topics } from '../protocol/topics.js';
import { loadRootText, type TrustedRoot } from '../signing/root.js';
import { signingError } from '../signing/errors.js';
import { ActiveModel } from './active-model.js';
import { connectMqtt, type BrokerClient } from './broker-client.js';
import { agentError } from './errors.js';
import { HttpApi } from './http-api.js';
import { Installer, type Rejection } from './installer.js';
import { openInstalledModel, type ModelEntry } from './model-loader.js';
import { parseAgentOptions, type AgentOptions, type AgentOptionsInput } from './options.js';
import { formatOutputs, type JsonTensor } from './outputs.js';
import { hasForbiddenNonFinite, PredictHealth } from './health.js';
import { Reporter, type ReportBody } from './reporter.js';
import { createOrtRuntime, type ModelRuntime } from './runtime.js';
import { StateStore, type InstalledModel } from './state-store.js';
import { TelemetryCollector, type TelemetryStatus } from './telemetry/collector.js';
import { TrustState } from './trust.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
const silent: AgentLog = { info() {}, warn() {}, error() {} };

export interface AgentSeams {
  runtime?: ModelRuntime;
  now?: () => number;
  /** An already-loaded trust root (the simulator shares one); otherwise read from rootPath. */
  root?: TrustedRoot;
  /** Replace the MQTT client (tests of the seam only). */
  connect?: (o: AgentOptions) => BrokerClient;
  log?: AgentLog;
}

export interface PredictResult {
  outputs: Record<string, JsonTensor>;
  model: { name: string; version: number; sha256: string; bundleId: string };
  latencyMs: number;
}

export interface AgentStatus {
  deviceId: string;
  agentVersion: string;
  runtime: string;
  connected: boolean;
  phase: StateReport['phase'];
  active: (Pick<InstalledModel, 'bundleId' | 'name' | 'version'> & { sha256: string; inputs: { name: string; type: string; shape: (string | number)[] }[] }) | null;
  previous: StateReport['previous'];
  target: StateReport['target'];
  progress: StateReport['progress'];
  counter: number;
  lastError: StateReport['lastError'];
  inflight: number;
  /** Telemetry window, sampling, offline buffer and whether debug raw sampling is on. */
  telemetry?: TelemetryStatus | null;
}

export interface AgentEvents {
  installed: [InstalledModel & { counter: number }];
  rejected: [Rejection];
  state: [StateReport];
}

export interface Agent {
  readonly options: AgentOptions;
  start(): Promise<void>;
  stop(): Promise<void>;
  predict(body: unknown): Promise<PredictResult>;
  status(): AgentStatus;
  /** Where the predict API listens, once started with `listen`. */
  readonly address: { host: string; port: number } | null;
  /** Resolves when no install is running or queued. */
  idle(): Promise<void>;
  on<K extends keyof AgentEvents>(event: K, fn: (...a: AgentEvents[K]) => void): this;
  once<K extends keyof AgentEvents>(event: K, fn: (...a: AgentEvents[K]) => void): this;
  off<K extends keyof AgentEvents>(event: K, fn: (...a: AgentEvents[K]) => void): this;
}

const ref = (m: InstalledModel | null | undefined) => (m ? { bundleId: m.bundleId, name: m.name, version: m.version } : null);

class FleetcastAgent extends EventEmitter implements Agent {
  readonly options: AgentOptions;
  readonly #seams: AgentSeams;
  readonly #now: () => number;
  readonly #log: AgentLog;
  readonly #active = new ActiveModel<ModelEntry>();
  readonly #health = new PredictHealth();
  #runtime: ModelRuntime | null = null;
  #store: StateStore | null = null;
  #client: BrokerClient | null = null;
  #reporter: Reporter | null = null;
  #installer: Installer | null = null;
  /** Root updates and log checkpoints (issue #6). */
  #trust: TrustState | null = null;
  #http: HttpApi | null = null;
  #address: { host: string; port: number } | null = null;
  #bootError: { code: string; at: number; bundleId?: string } | null = null;
  #started = false;
  #telemetry: TelemetryCollector | null = null;

  constructor(options: AgentOptionsInput | Record<string, unknown>, seams: AgentSeams = {}) {
    super();
    this.options = parseAgentOptions(options);
    this.#seams = seams;
    this.#now = seams.now ?? Date.now;
    this.#log = seams.log ?? silent;
  }

  get address() { return this.#address; }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    try {
      await this.#start();
    } catch (e) {
      // A half-started agent holds sessions, sockets and timers: release them before failing.
      await this.stop().catch(() => {});
      throw e;
    }
  }

  async #start(): Promise<void> {
    const o = this.options;
    const provisioned = this.#seams.root ?? (await readRoot(o.rootPath));
    const store = (this.#store = await StateStore.open(o.dataDir, this.#now));
    // Issue #6: the newest root this device took since provisioning (agent/trust.ts); assignments are checked against it.
    const trust = (this.#trust = await TrustState.open({
      dataDir: o.dataDir, deviceId: o.deviceId, now: this.#now,
      publish: (t, p) => this.#client?.publish(t, p) ?? Promise.resolve(),
      onSecurity: (code, detail) => { this.#log.warn({ code }, detail); this.#reporter?.event('security', { code, detail }); },
      onHubKeysRevoked: async () => { await store.update((s) => { s.counter = 0; }); },
      onRootUpdated: (r) => this.#log.info({ version: r.version }, 'took a new root'),
    }, provisioned));
    const root = trust.root;
    if (store.corruptAside) this.#bootError = { code: 'AGENT_ERR_STATE_CORRUPT', at: this.#now() };
    const boots = (await store.update((s) => { s.boots++; })).boots;
    const runtime = (this.#runtime = this.#seams.runtime ?? createOrtRuntime({ intraOpNumThreads: o.intraOpNumThreads }));
    await this.#loadPersisted(root);

    const client = (this.#client = o.brokerUrl === null ? null : (this.#seams.connect ?? defaultConnect(this.#log))(o));
    const reporter = (this.#reporter = new Reporter({
      deviceId: o.deviceId, client, now: this.#now, agentVersion: AGENT_VERSION, runtime: runtime.name,
      capabilities: o.capabilities as Record<string, unknown>, heartbeatMs: o.heartbeatMs,
      // Each boot starts its sequence above every earlier boot's, so the hub can drop stale reports.
      seqBase: boots * 1_000_000_000,
      snapshot: () => this.#snapshot(),
      onState: (r) => this.emit('state', r),
    }));
    // Telemetry seqs, like state seqs, start above every earlier boot's (the hub drops replays).
    this.#telemetry = new TelemetryCollector({ deviceId: o.deviceId, client, now: this.#now, seqBase: boots * 1_000_000_000, options: o.telemetry });
    this.#installer = new Installer({
      check: { get root() { return trust.root; }, deviceId: o.deviceId, runtimeName: runtime.name, maxRawModelBytes: o.maxRawModelBytes, now: this.#now },
      store, runtime, active: this.#active, client, reporter,
      fetch: { chunkTimeoutMs: o.chunkTimeoutMs, maxFetchAttempts: o.maxFetchAttempts, maxBackoffMs: o.maxBackoffMs, backoffJitter: o.backoffJitter },
      maxBatch: o.maxBatch, goldenTolerance: o.goldenTolerance, now: this.#now,
      onInstalled: (i) => { this.#log.info({ bundleId: i.bundleId, name: i.name, version: i.version }, 'model installed'); this.emit('installed', i); },
      onRejected: (r) => { this.#log.warn({ code: r.code, phase: r.phase, bundleId: r.bundleId }, r.message); this.emit('rejected', r); },
    });
    if (this.#bootError) reporter.event('stage-failed', { code: this.#bootError.code, ...(this.#bootError.bundleId ? { bundleId: this.#bootError.bundleId } : {}) });

    if (o.listen !== null) {
      const i = o.listen.lastIndexOf(':');
      this.#http = new HttpApi(this, { maxBodyBytes: o.maxBodyBytes, onInternalError: (e) => this.#log.error({ err: e }, 'predict API internal error') });
      try {
        this.#address = await this.#http.listen(o.listen.slice(0, i), Number(o.listen.slice(i + 1)));
      } catch (e) {
        throw agentError('AGENT_ERR_LISTEN', `${o.listen}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    if (client) {
      client.onMessage((topic, payload) => this.#dispatch(topic, payload));
      client.onConnect(() => { void this.#onConnect(); });
    }
    reporter.start();
    reporter.report();
    this.#telemetry.start();
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#reporter?.stop();
    this.#telemetry?.stop();
    await this.#installer?.stop();
    await this.#http?.close();
    await this.#client?.end().catch(() => {});
    await this.#active.close();
    this.#address = null;
  }

  idle(): Promise<void> { return this.#installer?.idle() ?? Promise.resolve(); }

  /** The predict path shared by the HTTP API and in-process callers (the simulator). */
  async predict(body: unknown): Promise<PredictResult> {
    const t0 = performance.now();
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw agentError('AGENT_ERR_BAD_REQUEST', 'the body is not a JSON object');
    const extra = Object.keys(body).filter((k) => k !== 'inputs');
    if (extra.length) throw agentError('AGENT_ERR_BAD_REQUEST', `unknown key ${JSON.stringify(extra[0].slice(0, 100))}`);
    const lease = this.#active.acquire();
    if (!lease) throw agentError('AGENT_ERR_NO_MODEL');
    try {
      const { entry } = lease;
      let feeds;
      try { ({ feeds } = entry.validate((body as { inputs?: unknown }).inputs)); } catch (e) { this.#telemetry?.failure({ bundleId: entry.info.bundleId, manifest: entry.manifest }, errorCode(e)); throw e; }
      let out;
      try {
        out = await entry.model.run(feeds);
      } catch (e) {
        this.#health.failed(entry.info.bundleId, performance.now() - t0);
        this.#telemetry?.failure({ bundleId: entry.info.bundleId, manifest: entry.manifest }, 'AGENT_ERR_INFERENCE');
        throw agentError('AGENT_ERR_INFERENCE', (e as Error).message?.slice(0, 500));
      }
      const { info } = entry;
      const outputs = formatOutputs(out);
      const latencyMs = performance.now() - t0;
      this.#telemetry?.observe({ bundleId: info.bundleId, manifest: entry.manifest }, feeds, out, latencyMs);
      this.#health.ok(info.bundleId, latencyMs, hasForbiddenNonFinite(outputs, (n) => entry.manifest.outputs.find((o) => o.name === n)?.allowNaN === true));
      return {
        outputs,
        model: { name: info.name, version: info.version, sha256: info.rawSha256, bundleId: info.bundleId },
        latencyMs,
      };
    } finally {
      lease.release();
    }
  }

  status(): AgentStatus {
    const s = this.#snapshot();
    const e = this.#active.current;
    return {
      deviceId: this.options.deviceId,
      agentVersion: AGENT_VERSION,
      runtime: this.#runtime?.name ?? 'none',
      connected: this.#client?.connected ?? false,
      phase: s.phase,
      active: e ? {
        bundleId: e.info.bundleId, name: e.info.name, version: e.info.version, sha256: e.info.rawSha256,
        inputs: e.manifest.inputs.map((i) => ({ name: i.name, type: i.type, shape: [...i.shape] })),
      } : null,
      previous: s.previous, target: s.target, progress: s.progress, counter: s.counter, lastError: s.lastError,
      inflight: this.#active.inflight,
      telemetry: this.#telemetry?.status() ?? null,
    };
  }

  #snapshot(): ReportBody {
    const st = this.#store?.state;
    const errors = [st?.lastError ?? null, this.#installer?.lastRejection ?? null, this.#bootError].filter((x) => x !== null);
    const lastError = errors.sort((a, b) => b.at - a.at)[0] ?? null;
    return {
      // What the device really serves, which after a failed boot load may differ from the state file.
      active: ref(this.#active.current?.info),
      previous: ref(st?.previous),
      phase: st?.install?.phase ?? 'idle',
      target: st?.assignment ? { bundleId: st.assignment.bundleId, counter: st.assignment.counter } : null,
      progress: this.#installer?.progress ?? null,
      lastError,
      counter: st?.counter ?? 0,
      ...(this.#health.snapshot() ? { health: this.#health.snapshot() } : {}),
    };
  }

  /** One handler per message type: assignments for this device, chunks for the fetch in progress. */
  #dispatch(topic: string, payload: Buffer): void {
    try {
      const t = parseTopic(topic);
      if (t.kind === 'assign' && t.deviceId === this.options.deviceId) {
        // An empty retained message clears the assignment on the broker; it is not one.
        if (payload.length > 0) this.#installer?.handleAssign(payload);
      } else if (t.kind === 'chunk') {
        this.#installer?.onChunk(t.bundleId, t.index, payload);
      } else if (t.kind === 'trust' && payload.length > 0) {
        void (t.what === 'roots' ? this.#trust?.onRoots(payload) : this.#trust?.onCheckpoint(payload));
      } else if (t.kind === 'proof' && t.deviceId === this.options.deviceId) {
        void this.#trust?.onProof(payload);
      }
    } catch (e) {
      if (errorCode(e) !== 'PROTO_ERR_BAD_TOPIC') this.#log.error({ err: e, topic }, 'message handler failed');
    }
  }

  async #onConnect(): Promise<void> {
    const client = this.#client;
    if (!client || !this.#started) return;
    this.#log.info({ deviceId: this.options.deviceId }, 'connected to broker');
    try {
      // Clean session: subscribe again on every connection; the retained assignment follows.
      await client.subscribe(topics.assign(this.options.deviceId));
    } catch (e) {
      this.#log.warn({ err: e }, 'subscribing to the assign topic failed; retrying on reconnect');
    }
    // Issue #6: root chain, log checkpoints and answers to this device's proof requests (roots first: checkpoints are checked with them).
    for (const f of [topics.trustRoots(), topics.trustCheckpoint(), topics.proof(this.options.deviceId)]) {
      await client.subscribe(f).catch((e: unknown) => this.#log.warn({ err: e, filter: f }, 'subscribing to a trust topic failed; retrying on reconnect'));
    }
    this.#reporter?.onConnect();
    this.#telemetry?.onConnect();
    this.#installer?.onReconnect();
  }

  /** Serve the persisted active model (or, failing that, the previous one) with no network. */
  async #loadPersisted(root: TrustedRoot): Promise<void> {
    const st = this.#store!.state;
    for (const m of [st.active, st.previous]) {
      if (!m) continue;
      try {
        const entry = await openInstalledModel({ store: this.#store!, root, runtime: this.#runtime!, maxBatch: this.options.maxBatch, goldenTolerance: this.options.goldenTolerance }, m);
        void this.#active.swap(entry);
        if (m !== st.active) this.#log.warn({ bundleId: m.bundleId }, 'serving the previous model: the active one failed to load');
        return;
      } catch (e) {
        this.#bootError = { code: errorCode(e), at: this.#now(), bundleId: m.bundleId };
        this.#log.error({ err: e, bundleId: m.bundleId }, 'installed model failed its boot check');
      }
    }
  }
}

async function readRoot(path: string): Promise<TrustedRoot> {
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch (e) {
    throw signingError('SIGN_ERR_BAD_ROOT', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // An expired root must not stop a device from serving what it already runs; the
  // installer refuses new assignments instead (AGENT_ERR_ROOT_EXPIRED).
  return loadRootText(text, { allowExpired: true });
}

function defaultConnect(log: AgentLog) {
  return (o: AgentOptions): BrokerClient => connectMqtt({
    url: o.brokerUrl!, clientId: o.deviceId, reconnectPeriodMs: o.reconnectPeriodMs, connectTimeoutMs: o.connectTimeoutMs,
    ...(o.mqttUsername !== undefined ? { username: o.mqttUsername } : {}),
    ...(o.mqttPassword !== undefined ? { password: o.mqttPassword } : {}),
    onError: (e) => log.warn({ err: e.message }, 'mqtt error'),
  });
}

export function createAgent(options: AgentOptionsInput | Record<string, unknown>, seams?: AgentSeams): Agent {
  return new FleetcastAgent(options, seams);
}
