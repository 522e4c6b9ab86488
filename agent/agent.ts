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
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { errorCode, isFleetcastError, protocolError } from '@fleetcast/protocol/errors.js';
import type { StateReport } from '@fleetcast/protocol/messages.js';
import { parseTopic, topics } from '@fleetcast/protocol/topics.js';
import { loadRootText, type TrustedRoot } from '@fleetcast/signing/root.js';
import { signingError } from '@fleetcast/signing/errors.js';
import { describeChanges, tightenTree } from '@fleetcast/signing/private-files.js';
import { ActiveModel } from './active-model.js';
import type { ManifestVerifier } from './assignment-check.js';
import { connectMqtt, type BrokerClient, type BrokerFailure } from './broker-client.js';
import { agentError } from './errors.js';
import { HttpApi, type InferResult, type ServedModel } from './http-api.js';
import { checkModel, type InferRequest } from './infer-v2.js';
import { Installer, type Rejection, type Unpacker } from './installer.js';
import { openInstalledModel, type ModelEntry } from './model-loader.js';
import { VerifiedManifests } from './verified-manifests.js';
import type { PayloadCheckFactory } from './payload-check.js';
import type { PayloadMatcher } from './payload-matcher.js';
import { parseAgentOptions, type AgentOptions, type AgentOptionsInput } from './options.js';
import { formatOutputs, type JsonTensor } from './outputs.js';
import { hasForbiddenNonFinite, PredictHealth } from './health.js';
import { Reporter, type ReportBody } from './reporter.js';
import type { ModelRuntime, TensorData } from './runtime.js';
import { createRuntime } from './runtime-select.js';
import { lowerPoolThreads } from './thread-priority.js';
import { PredictStats } from './predict-stats.js';
import type { AgentMetrics } from './agent-metrics.js';
import { loadAgentMetrics } from './optional-metrics.js';
import { applyRecoveryTable, openServable, rollbackCheck } from './recovery.js';
import { readApiToken } from './request-guard.js';
import { renderStatusPage } from './status-page.js';
import { diskStorage } from './disk-storage.js';
import { StateStore, type InstalledModel } from './state-store.js';
import type { AgentStorage } from './storage.js';
import { TelemetryCollector, type TelemetryStatus } from './telemetry/collector.js';
import { TrustState, type CheckpointVerifier } from './trust.js';
import { DeviceControl, type ControlStatus } from './device-control.js';
import { compileFlatValidator, type FlatValidator } from './validate-flat.js';

export const AGENT_VERSION = '0.1.0';

/** Report sequence numbers per boot: boot N starts at N × this. */
const BOOT_SEQ_SPAN = 1_000_000_000;
/**
 * A boot on a full disk cannot save its count N + 1, so the next boot that can will use N + 1 too: the
 * full-disk boot takes the upper half of the saved count N's range instead (boot N's own reports stay below
 * it, 500 million of them), leaving all of N + 1's range to that next boot.
 */
const FULL_DISK_SEQ_OFFSET = BOOT_SEQ_SPAN / 2;

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
  /** Replace decompression of verified payloads (the simulator shares it between agents in one process). */
  unpack?: Unpacker;
  /** Replace the chunk and payload hash checks of a fetch (the simulator shares hashing of identical bytes). */
  payloadCheck?: PayloadCheckFactory;
  /** Where the agent keeps dataDir (default the disk; the simulator keeps its devices' in memory, agent/memory-storage.ts). */
  storage?: AgentStorage;
  /** Received chunk payloads equal to these references are handed on without a copy (the simulator's; agent/payload-matcher.ts). */
  payloadMatcher?: PayloadMatcher;
  /** Replace the release-signature check of assigned manifests (the simulator verifies identical manifests once). */
  verifyManifest?: ManifestVerifier;
  /** Replace the signature check of the log's checkpoints (the simulator verifies identical checkpoints once). */
  verifyCheckpoint?: CheckpointVerifier;
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
  /** Why the broker is not connected (coded), how many attempts in a row failed, when the next one is due; null while connected. */
  broker?: BrokerFailure | null;
  phase: StateReport['phase'];
  active: (Pick<InstalledModel, 'bundleId' | 'name' | 'version'> & { sha256: string; inputs: { name: string; type: string; shape: (string | number)[] }[] }) | null;
  previous: StateReport['previous'];
  target: StateReport['target'];
  progress: StateReport['progress'];
  counter: number;
  /** The root this device verifies with, and the root version at which it last reset its counter (0: never). */
  trust?: { rootVersion: number; counterEpoch: number } | null;
  lastError: StateReport['lastError'];
  inflight: number;
  /** Telemetry window, sampling, offline buffer and whether debug raw sampling is on. */
  telemetry?: TelemetryStatus | null;
  /** Operator control from the hub (issue #5 debug sampling): last applied counter and last refusal. */
  control?: ControlStatus | null;
  probation: { bundleId: string; until: number; requests: number; errors: number } | null;
  predictions: { running: number; requests: number; errors: number; busy: number; recent: import('./predict-stats.js').LatencySummary; lastCodes: { code: string; at: number }[] };
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
  /** Open Inference Protocol inference (the /v2 API); the same limits, stats, probation and telemetry as predict. */
  infer(model: { name: string; version?: string }, req: InferRequest): Promise<InferResult>;
  served(): ServedModel | null;
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
  /** Recent outcomes for the status page and the probation baseline (issue #4). */
  readonly #stats = new PredictStats();
  #telemetry: TelemetryCollector | null = null;
  #predicting = 0;
  #runtime: ModelRuntime | null = null;
  #store: StateStore | null = null;
  #client: BrokerClient | null = null;
  #reporter: Reporter | null = null;
  #installer: Installer | null = null;
  /** Root updates and log checkpoints (issue #6). */
  #trust: TrustState | null = null;
  /** Signed operator control from the hub: debug raw sampling (issue #5). */
  #control: DeviceControl | null = null;
  #http: HttpApi | null = null;
  /** Prometheus metrics, kept only when the HTTP API (which serves them) is on: simulated fleets pay nothing. */
  #metrics: AgentMetrics | null = null;
  /** The HTTP API is on but prom-client (optional) is not installed. */
  #metricsMissing = false;
  /** v2 validators, compiled on first use per installed model (most devices never use /v2). */
  readonly #flat = new WeakMap<ModelEntry, FlatValidator>();
  #address: { host: string; port: number } | null = null;
  #bootError: { code: string; at: number; bundleId?: string } | null = null;
  #started = false;

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
    const fs = this.#seams.storage ?? diskStorage;
    if (fs.kind === 'disk') this.#tightenDataDir();
    const store = (this.#store = await StateStore.open(o.dataDir, this.#now, fs));
    // Issue #6: the newest root this device took since provisioning (agent/trust.ts); assignments are checked against it.
    const trust = (this.#trust = await TrustState.open({
      dataDir: o.dataDir, storage: fs, deviceId: o.deviceId, now: this.#now,
      ...(this.#seams.verifyCheckpoint ? { verifyCheckpoint: this.#seams.verifyCheckpoint } : {}),
      publish: (t, p) => this.#client?.publish(t, p) ?? Promise.resolve(),
      onSecurity: (code, detail) => { this.#log.warn({ code }, detail); this.#reporter?.event('security', { code, detail }); },
      onHubKeysRevoked: async (r) => { await store.update((s) => { s.counter = 0; s.counterEpoch = r.version; }); this.#control?.reset(); },
      onRootUpdated: (r) => {
        this.#log.info({ version: r.version }, 'took a new root');
        // The retained assignment may have been refused under the old root (signed by a hub key it did not list yet,
        // or re-signed by the hub for this root): subscribing again makes the broker send it again [MQTT-3.8.4-3].
        this.#client?.subscribe(topics.assign(o.deviceId)).catch(() => { /* renewed on the next connection */ });
      },
    }, provisioned).catch((e: unknown) => { throw dataDirError(o.dataDir, e); }));
    const root = trust.root;
    if (store.corruptAside) this.#bootError = { code: 'AGENT_ERR_STATE_CORRUPT', at: this.#now() };
    const stale = await fs.removeStaleTemps(o.dataDir).catch(() => 0);
    if (stale > 0) this.#log.warn({ count: stale }, 'removed temporary files that interrupted writes left in the data folder');
    // Each boot's report sequence starts above every earlier boot's, so the hub can drop stale reports.
    let seqBase: number;
    try {
      seqBase = (await store.update((s) => {
        // The hub drops any report seq at or below the highest it saw. With state.json lost, so is the
        // boot count: restart it above any count a device reaches, from the clock (ms / 10⁶ ≈ 1.8 million
        // in 2026; seqs stay below 2⁵³), or this boot's reports (AGENT_ERR_STATE_CORRUPT among them) would
        // all be dropped as replays.
        if (store.corruptAside) s.boots = Math.max(s.boots, Math.ceil(this.#now() / 1e6));
        s.boots++;
      })).boots * BOOT_SEQ_SPAN;
    } catch (e) {
      // A full disk must not stop the device from serving the model it has: boot on, say so, report it once connected.
      // The first write into the data folder: a folder the agent cannot write fails here, named.
      if (errorCode(e) !== 'AGENT_ERR_DISK_SPACE') throw dataDirError(o.dataDir, e);
      // The boot count cannot be saved, so every boot until space is freed gets the same count: place this one further
      // into the upper half of that count's range the later it starts (10 per second since the state was last saved),
      // above the last such boot and below the range of the next boot that saves its count (FULL_DISK_SEQ_OFFSET).
      const saved = (await fs.stat(join(o.dataDir, 'state.json')).catch(() => null))?.mtimeMs ?? this.#now();
      const boots = store.corruptAside ? Math.max(store.state.boots, Math.ceil(this.#now() / 1e6)) : store.state.boots;
      seqBase = boots * BOOT_SEQ_SPAN + FULL_DISK_SEQ_OFFSET + Math.min(FULL_DISK_SEQ_OFFSET - 1_000_000, Math.max(0, Math.floor((this.#now() - saved) / 100)));
      this.#bootError = { code: 'AGENT_ERR_DISK_SPACE', at: this.#now() };
      this.#log.error({ code: 'AGENT_ERR_DISK_SPACE', dataDir: o.dataDir }, `cannot save the agent state (${(e as Error).message}); serving the installed model, nothing new is installed until space is freed`);
    }
    const runtime = (this.#runtime = this.#seams.runtime ?? await createRuntime(o, (why) => this.#log.warn({ why }, 'onnxruntime-node did not load; using onnxruntime-web (wasm)')));
    // The threadpool runs only background work (state and install file writes, fsyncs, signature checks): below serving.
    // Only an agent that made its own runtime owns its process (the daemon); agents sharing one (the simulator's, given
    // a runtime) leave its threads alone.
    if (!this.#seams.runtime) await lowerPoolThreads(o.backgroundNice);
    const boot = await this.#recover(root);

    const client = (this.#client = o.brokerUrl === null ? null : (this.#seams.connect ?? defaultConnect(this.#log, this.#seams.payloadMatcher))(o));
    const reporter = (this.#reporter = new Reporter({
      deviceId: o.deviceId, client, now: this.#now, agentVersion: AGENT_VERSION, runtime: runtime.name,
      capabilities: o.capabilities as Record<string, unknown>, heartbeatMs: o.heartbeatMs,
      seqBase,
      snapshot: () => this.#snapshot(),
      onState: (r) => this.emit('state', r),
    }));
    // Telemetry seqs, like state seqs, start above every earlier boot's (the hub drops replays).
    this.#telemetry = new TelemetryCollector({ deviceId: o.deviceId, client, now: this.#now, seqBase, options: o.telemetry });
    const telemetry = this.#telemetry;
    // Issue #5: debug raw sampling only while a hub-signed control message says so (agent/device-control.ts).
    this.#control = await DeviceControl.open({
      dataDir: o.dataDir, storage: fs, deviceId: o.deviceId, now: this.#now, root: () => trust.root, counterEpoch: () => store.state.counterEpoch,
      setDebug: (rows, until) => telemetry.setDebug(rows, until),
      onRefused: (code, detail, counter) => { this.#log.warn({ code, counter }, detail); reporter.event('security', { code, detail, ...(counter !== undefined ? { counter } : {}) }); },
      onApplied: (p) => this.#log.info({ counter: p.counter, debug: p.debug }, p.debug ? 'debug sampling on' : 'debug sampling off'),
    });
    this.#installer = new Installer({
      check: {
        get root() { return trust.root; }, deviceId: o.deviceId, runtimeName: runtime.name, maxRawModelBytes: o.maxRawModelBytes, now: this.#now,
        hardware: hardwareOf(o.capabilities.hardware),
        ...(this.#seams.verifyManifest ? { verifyManifest: this.#seams.verifyManifest } : {}),
        manifests: new VerifiedManifests(),
      },
      store, runtime, active: this.#active, client, reporter,
      fetch: { chunkTimeoutMs: o.chunkTimeoutMs, maxFetchAttempts: o.maxFetchAttempts, maxBackoffMs: o.maxBackoffMs, backoffJitter: o.backoffJitter, minBytesPerSec: o.minTransferBytesPerSec, rateWindowMs: o.rateWindowMs },
      maxBatch: o.maxBatch, goldenTolerance: o.goldenTolerance, now: this.#now,
      onInstalled: (i) => { this.#log.info({ bundleId: i.bundleId, name: i.name, version: i.version }, 'model installed'); this.#metrics?.installed(i.bundleId, this.#now()); this.emit('installed', i); },
      onRejected: (r) => { this.#log.warn({ code: r.code, phase: r.phase, bundleId: r.bundleId }, r.message); this.#metrics?.rejected(r, this.#now()); this.emit('rejected', r); },
      probation: { ms: o.probationMs, minRequests: o.probationMinRequests, maxErrorRate: o.probationMaxErrorRate, maxLatencyRatio: o.probationMaxLatencyRatio },
      diskReserveBytes: o.diskReserveBytes,
      ...(this.#seams.unpack ? { unpack: this.#seams.unpack } : {}),
      ...(this.#seams.payloadCheck ? { payloadCheck: this.#seams.payloadCheck } : {}),
      loadInstalled: (m) => openInstalledModel({ store, root, runtime, maxBatch: o.maxBatch, goldenTolerance: o.goldenTolerance }, m),
      baselineP95: (id) => { const s = this.#stats.summary(id); return s.n >= o.probationMinRequests ? s.p95 : null; },
    });
    for (const n of boot.notes) reporter.event(n.kind, { code: n.code, ...(n.bundleId ? { bundleId: n.bundleId } : {}) });
    if (boot.resumeProbation) this.#installer.resumeProbation();
    if (this.#bootError) reporter.event('stage-failed', { code: this.#bootError.code, ...(this.#bootError.bundleId ? { bundleId: this.#bootError.bundleId } : {}) });

    if (o.listen !== null) {
      // Loaded here, not on import: an agent without its HTTP API never loads prom-client. prom-client is an
      // optional dependency of the agent package: without it the agent serves everything but /metrics.
      const AgentMetrics = await loadAgentMetrics();
      if (AgentMetrics) {
        this.#metrics = new AgentMetrics({
          model: () => { const m = this.#active.current?.info; return m ? { name: m.name, version: m.version, bundleId: m.bundleId } : null; },
          phase: () => this.#store?.state.install?.phase ?? 'idle',
          telemetry: () => this.#telemetry?.status() ?? null,
          connected: () => this.#client?.connected ?? false,
        });
      } else {
        this.#metricsMissing = true;
        this.#log.warn({ code: 'AGENT_ERR_METRICS_UNAVAILABLE' }, 'prom-client is not installed (an optional dependency): GET /metrics is unavailable');
      }
      const i = o.listen.lastIndexOf(':');
      this.#http = new HttpApi(this, {
        maxBodyBytes: o.maxBodyBytes, server: { name: 'fleetcast-agent', version: AGENT_VERSION },
        listenHost: o.listen.slice(0, i), allowedHosts: o.allowedHosts, allowedOrigins: o.allowedOrigins,
        apiToken: o.apiTokenFile !== undefined ? await readApiToken(o.apiTokenFile) : null,
        onInternalError: (e) => this.#log.error({ err: e }, 'predict API internal error'),
      });
      try {
        this.#address = await this.#http.listen(o.listen.slice(0, i), Number(o.listen.slice(i + 1)));
      } catch (e) {
        const errno = (e as NodeJS.ErrnoException).code;
        // An address that can never work here (bad port, not this host's, privileged) is configuration;
        // one in use may free up, so it stays a runtime failure that systemd retries.
        if (errno !== undefined && LISTEN_CONFIG_ERRNOS.has(errno)) throw protocolError('PROTO_ERR_INVALID_OPTION', `listen ${o.listen}: ${errno}; choose an address of this host and a port in 1-65535 the agent user may bind`);
        throw agentError('AGENT_ERR_LISTEN', `${o.listen}: ${errno ?? (e as Error).message}`);
      }
    }
    if (client) {
      client.onMessage((topic, payload) => this.#dispatch(topic, payload));
      client.onConnect(() => { void this.#onConnect(); });
      // The CONNACK may have come during an await above (its 'connect' event is then gone): subscribe now.
      if (client.connected) void this.#onConnect();
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
    await this.#control?.close();
    await this.#installer?.stop();
    await this.#http?.close();
    await this.#client?.end().catch(() => {});
    await this.#trust?.close(); // no trust write into dataDir after stop (issue #6)
    await this.#store?.close();
    await this.#active.close();
    // The inference thread this agent started (a runtime passed in belongs to its caller).
    if (!this.#seams.runtime) await this.#runtime?.close?.();
    this.#address = null;
  }

  /** A data folder made by an older agent, by hand or by systemd (0755) may be readable by other users: tighten it and say so. */
  #tightenDataDir(): void {
    const loosened = tightenTree(this.options.dataDir);
    const said = describeChanges(loosened);
    if (said) this.#log.warn({ dataDir: this.options.dataDir, count: loosened.length }, said);
  }

  idle(): Promise<void> { return this.#installer?.idle() ?? Promise.resolve(); }

  /**
   * /v1/predict, for the HTTP API and in-process callers (the simulator).
   */
  async predict(body: unknown): Promise<PredictResult> {
    return this.#admit(async () => {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw agentError('AGENT_ERR_BAD_REQUEST', 'the body is not a JSON object');
      const extra = Object.keys(body).filter((k) => k !== 'inputs');
      if (extra.length) throw agentError('AGENT_ERR_BAD_REQUEST', `unknown key ${JSON.stringify(extra[0].slice(0, 100))}`);
      const r = await this.#run((entry) => entry.validate((body as { inputs?: unknown }).inputs).feeds);
      return { outputs: formatOutputs(r.out), model: r.model, latencyMs: r.latencyMs };
    });
  }

  /** v2 inference: flat or binary tensors in, raw tensors out (the HTTP layer encodes them). */
  async infer(want: { name: string; version?: string }, req: InferRequest): Promise<InferResult> {
    return this.#admit(async () => {
      const r = await this.#run((entry) => {
        let v = this.#flat.get(entry);
        if (!v) { v = compileFlatValidator(entry.manifest.inputs, { maxBatch: this.options.maxBatch }); this.#flat.set(entry, v); }
        return v(req.inputs).feeds;
      }, ({ info, manifest }) => {
        // Checked against the leased model, not an earlier look: a swap in between must not run another version.
        checkModel(info, want.name, want.version);
        for (const o of req.outputs ?? []) {
          if (!manifest.outputs.some((m) => m.name === o.name)) throw agentError('AGENT_ERR_UNKNOWN_OUTPUT', `output ${JSON.stringify(o.name.slice(0, 100))}; the model has ${manifest.outputs.map((m) => m.name).join(', ')}`, { output: o.name.slice(0, 100) });
        }
      });
      return { model: { name: r.model.name, version: r.model.version }, outputNames: r.outputNames, outputs: r.out };
    });
  }

  served(): ServedModel | null {
    const e = this.#active.current;
    return e ? { name: e.info.name, version: e.info.version, inputs: e.manifest.inputs, outputs: e.manifest.outputs } : null;
  }

  /**
   * At most maxConcurrentPredictions run at once; one more is refused with 429
   * AGENT_ERR_BUSY at once rather than queued without bound.
   */
  async #admit<T>(fn: () => Promise<T>): Promise<T> {
    this.#metrics?.request();
    if (this.#predicting >= this.options.maxConcurrentPredictions) {
      this.#stats.noteCode('AGENT_ERR_BUSY');
      this.#metrics?.failure('AGENT_ERR_BUSY');
      throw agentError('AGENT_ERR_BUSY', `${this.#predicting} predictions running, limit ${this.options.maxConcurrentPredictions}`);
    }
    this.#predicting++;
    try {
      return await fn();
    } catch (e) {
      const code = errorCode(e);
      this.#stats.noteCode(code);
      this.#metrics?.failure(code);
      throw e;
    } finally {
      this.#predicting--;
    }
  }

  /** One model outcome: the status page's stats and the probation window. */
  #observe(bundleId: string, latencyMs: number, failed: boolean): void {
    this.#stats.record({ bundleId, latencyMs, failed });
    this.#metrics?.latency(latencyMs);
    this.#installer?.observePredict(bundleId, latencyMs, failed);
  }

  /**
   * The one predict path under v1 and v2: lease the model, validate (a refusal
   * counts in telemetry as an invalid request), run, and record health, stats,
   * probation and telemetry. `validate` gets the leased model, so input checks
   * and the run always agree on the version. `precheck` refusals (a request for
   * another model or output) are about the request, not its input data, so
   * telemetry does not count them as invalid input.
   */
  async #run(validate: (entry: ModelEntry) => Record<string, TensorData>, precheck?: (entry: ModelEntry) => void): Promise<{ out: Record<string, TensorData>; model: PredictResult['model']; outputNames: string[]; latencyMs: number }> {
    const t0 = performance.now();
    const lease = this.#active.acquire();
    if (!lease) throw agentError('AGENT_ERR_NO_MODEL');
    try {
      const { entry } = lease;
      precheck?.(entry);
      let feeds;
      try { feeds = validate(entry); } catch (e) { this.#telemetry?.failure({ bundleId: entry.info.bundleId, manifest: entry.manifest }, errorCode(e)); throw e; }
      let out;
      try {
        out = await entry.model.run(feeds);
      } catch (e) {
        // The health window belongs to the model serving now: a request that began on the model just
        // swapped out must not reset or skew the new model's counts (the rollout gates read them).
        if (entry === this.#active.current) this.#health.failed(entry.info.bundleId, performance.now() - t0);
        this.#observe(entry.info.bundleId, performance.now() - t0, true);
        this.#telemetry?.failure({ bundleId: entry.info.bundleId, manifest: entry.manifest }, 'AGENT_ERR_INFERENCE');
        // The inference thread ended under the request: 503, retry (the next call reloads), not "the model failed".
        if (errorCode(e) === 'AGENT_ERR_RUNTIME_LOST') throw e;
        throw agentError('AGENT_ERR_INFERENCE', (e as Error).message?.slice(0, 500));
      }
      const { info } = entry;
      const latencyMs = performance.now() - t0;
      const nonFinite = hasForbiddenNonFinite(out, (n) => entry.manifest.outputs.find((o) => o.name === n)?.allowNaN === true);
      if (entry === this.#active.current) this.#health.ok(info.bundleId, latencyMs, nonFinite);
      this.#observe(info.bundleId, latencyMs, nonFinite);
      this.#telemetry?.observe({ bundleId: info.bundleId, manifest: entry.manifest }, feeds, out, latencyMs);
      return {
        out,
        model: { name: info.name, version: info.version, sha256: info.rawSha256, bundleId: info.bundleId },
        outputNames: entry.manifest.outputs.map((o) => o.name),
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
      broker: this.#client?.connected ? null : (this.#client?.failure ?? null),
      phase: s.phase,
      active: e ? {
        bundleId: e.info.bundleId, name: e.info.name, version: e.info.version, sha256: e.info.rawSha256,
        inputs: e.manifest.inputs.map((i) => ({ name: i.name, type: i.type, shape: [...i.shape] })),
      } : null,
      previous: s.previous, target: s.target, progress: s.progress, counter: s.counter, lastError: s.lastError,
      trust: this.#trust ? { rootVersion: this.#trust.root.version, counterEpoch: this.#store?.state.counterEpoch ?? 0 } : null,
      inflight: this.#active.inflight,
      telemetry: this.#telemetry?.status() ?? null,
      control: this.#control?.status() ?? null,
      probation: this.#installer?.probation ?? null,
      predictions: { running: this.#predicting, requests: this.#stats.requests, errors: this.#stats.errors, busy: this.#stats.busy, recent: this.#stats.summary(), lastCodes: [...this.#stats.lastCodes] },
    };
  }

  /** GET /metrics: Prometheus text (agent/agent-metrics.ts). */
  metrics(): Promise<string> {
    if (!this.#metrics) throw this.#metricsMissing ? agentError('AGENT_ERR_METRICS_UNAVAILABLE') : agentError('AGENT_ERR_NOT_FOUND', 'GET /metrics (the agent has no HTTP API)');
    return this.#metrics.text();
  }

  /** The local status page (GET /): server-rendered, works with JavaScript off. */
  statusPage(): string { return renderStatusPage(this.status()); }

  #snapshot(): ReportBody {
    const st = this.#store?.state;
    const errors = [st?.lastError ?? null, this.#installer?.lastRejection ?? null, this.#bootError].filter((x) => x !== null);
    const lastError = errors.sort((a, b) => b.at - a.at)[0] ?? null;
    // Once: each call sorts the latency window (a report goes out on every phase change of a swap).
    const health = this.#health.snapshot();
    return {
      // What the device really serves, which after a failed boot load may differ from the state file.
      active: ref(this.#active.current?.info),
      previous: ref(st?.previous),
      phase: st?.install?.phase ?? 'idle',
      target: st?.assignment ? { bundleId: st.assignment.bundleId, counter: st.assignment.counter } : null,
      progress: this.#installer?.progress ?? null,
      lastError,
      counter: st?.counter ?? 0,
      ...(health ? { health } : {}),
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
      } else if (t.kind === 'control' && t.deviceId === this.options.deviceId) {
        this.#control?.handle(payload);
      }
    } catch (e) {
      if (errorCode(e) !== 'PROTO_ERR_BAD_TOPIC') this.#log.error({ err: e, topic }, 'message handler failed');
    }
  }

  async #onConnect(): Promise<void> {
    const client = this.#client;
    if (!client || !this.#started) return;
    this.#log.info({ deviceId: this.options.deviceId }, 'connected to broker');
    // A fetch cut off by the lost connection asks again on this one, before anything else is awaited:
    // told after the subscriptions below, a fetch that the retained assignment started meanwhile on
    // this very connection would subscribe and ask a second time (seen once SUBACKs came without delay).
    this.#installer?.onReconnect();
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
    // Issue #5: operator control (debug sampling), retained; a broker that refuses it only means no debug sampling.
    await client.subscribe(topics.control(this.options.deviceId)).catch((e: unknown) => this.#log.warn({ err: e }, 'subscribing to the control topic failed; retrying on reconnect'));
    this.#reporter?.onConnect();
    this.#telemetry?.onConnect();
  }

  /**
   * Boot (agent/recovery.ts has the table): settle an interrupted install, then serve
   * the persisted active model (or, failing that, the previous one) with no network.
   * After an unreadable state file, the rollback check serves the newest verified model on disk.
   */
  async #recover(root: TrustedRoot): Promise<Awaited<ReturnType<typeof openServable>>> {
    const store = this.#store!;
    const o = this.options;
    const ctx = { store, root, runtime: this.#runtime!, maxBatch: o.maxBatch, goldenTolerance: o.goldenTolerance };
    if (store.corruptAside) {
      const entry = await rollbackCheck(store, ctx, this.#now);
      if (entry) { void this.#active.swap(entry); this.#log.warn({ bundleId: entry.info.bundleId }, 'state file unreadable: serving the newest verified model on disk'); }
      return { entry, notes: [], resumeProbation: false };
    }
    // On a full disk the table cannot persist its decision: serve what the state file says and settle the install on a later boot.
    const notes = await applyRecoveryTable(store, o.maxInstallRecoveries, this.#now).catch((e: unknown) => {
      if (errorCode(e) !== 'AGENT_ERR_DISK_SPACE') throw e;
      return [];
    });
    const boot = await openServable(store, ctx, this.#now);
    if (boot.entry) void this.#active.swap(boot.entry);
    for (const n of boot.notes) {
      this.#bootError = { code: n.code, at: this.#now(), ...(n.bundleId ? { bundleId: n.bundleId } : {}) };
      this.#log.error({ code: n.code, bundleId: n.bundleId }, 'installed model failed its boot check');
    }
    // Boot-check failures are reported once below as the boot error; crash-loop give-ups as their own events.
    return { ...boot, notes };
  }
}

/** The device's trust root from its file (coded SIGN_ERR_BAD_ROOT when unreadable or invalid; an expired root still loads). */
export async function readRoot(path: string): Promise<TrustedRoot> {
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch (e) {
    throw signingError('SIGN_ERR_BAD_ROOT', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // An expired root must not stop a device from serving what it already runs; the
  // installer refuses new assignments instead (AGENT_ERR_ROOT_EXPIRED).
  try {
    return loadRootText(text, { allowExpired: true });
  } catch (e) {
    // A root that does not verify (bad signature, threshold not met) is a provisioning fault like one
    // that does not parse: one code, so the CLI exits "configuration error" for all of them.
    if (isFleetcastError(e) && e.code === 'SIGN_ERR_BAD_ROOT') throw e;
    throw signingError('SIGN_ERR_BAD_ROOT', `${path} does not verify: ${errorCode(e)}: ${(e as Error).message}`, { cause: errorCode(e) });
  }
}

const LISTEN_CONFIG_ERRNOS = new Set(['ERR_SOCKET_BAD_PORT', 'EADDRNOTAVAIL', 'EACCES', 'ENOTFOUND']);

/** A data folder the agent may not write (wrong owner, read-only mount, a file in the way) is configuration. */
const DATA_DIR_ERRNOS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'EEXIST', 'ELOOP', 'ENAMETOOLONG']);
function dataDirError(dataDir: string, e: unknown): unknown {
  const errno = (e as NodeJS.ErrnoException | null)?.code;
  return typeof errno === 'string' && DATA_DIR_ERRNOS.has(errno) ? agentError('AGENT_ERR_DATA_DIR', `${dataDir}: ${errno} (${(e as Error).message})`) : e;
}

function defaultConnect(log: AgentLog, payloadMatcher: PayloadMatcher | undefined) {
  return (o: AgentOptions): BrokerClient => connectMqtt({
    url: o.brokerUrl!, clientId: o.deviceId, connectTimeoutMs: o.connectTimeoutMs, keepaliveSec: o.mqttKeepaliveSec,
    reconnectPeriodMs: o.reconnectPeriodMs, reconnectMaxMs: o.reconnectMaxMs,
    loginRetry: { firstMs: o.loginRetryMs, maxMs: Math.max(o.loginRetryMs, o.loginRetryMaxMs) },
    ...(o.mqttUsername !== undefined ? { username: o.mqttUsername } : {}),
    ...(o.mqttPassword !== undefined ? { password: o.mqttPassword } : {}),
    ...(o.mqttPasswordFile !== undefined ? { passwordFile: o.mqttPasswordFile } : {}),
    ...(o.mqttCaPath !== undefined ? { caPath: o.mqttCaPath } : {}),
    ...(payloadMatcher ? { payloadMatcher } : {}),
    // Once per distinct reason, not once per attempt; the status page shows the latest with its attempt count.
    onFailure: (f) => log.warn({ code: f.code, attempts: f.attempts, retryInMs: f.nextAttemptAt === null ? null : f.nextAttemptAt - f.at }, `cannot connect to the broker: ${f.detail}`),
  });
}

export function createAgent(options: AgentOptionsInput | Record<string, unknown>, seams?: AgentSeams): Agent {
  return new FleetcastAgent(options, seams);
}

/** capabilities.hardware as a list of classes (a string or an array of strings; anything else is none). */
function hardwareOf(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
