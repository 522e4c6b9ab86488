/**
 * The install state machine (DESIGN "Agent install state machine"):
 * accept → fetching → verifying → staging → swapping → probation → committed,
 * or failed / rolled-back, run from the transition table in install-table.ts.
 * Each phase is persisted BEFORE its work, so after a power cut the agent
 * knows where it was (recovery.ts's table says what boot does with it); work
 * already done is found again on disk (hash-valid staged chunks, a hash-valid
 * unpacked model) and not repeated.
 *
 * Any failure: a coded event, nothing new loaded, the old model keeps serving.
 */
import { join } from 'node:path';
import type { DecompressFeed } from '@fleetcast/bundles/decompress-feed.js';
import type { VerifiedManifest } from '@fleetcast/bundles/verify.js';
import { errorCode, isFleetcastError } from '@fleetcast/protocol/errors.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { IN_FLIGHT_PHASES, type Assignment, type Phase } from '@fleetcast/protocol/messages.js';
import type { ActiveModel } from './active-model.js';
import { nextTurn } from './next-turn.js';
import { checkAssignMessageAsync, type CheckContext, type CheckedAssignment } from './assignment-check.js';
import type { BrokerClient } from './broker-client.js';
import { agentError } from './errors.js';
import { AbortedError, ChunkFetch, type FetchedPayload, type FetchSettings } from './fetcher.js';
import { checkPayloadHash, payloadCheck, type PayloadCheckFactory } from './payload-check.js';
import { openModel, smokeTest, type ModelEntry } from './model-loader.js';
import { Probation, type ProbationLimits, type Verdict } from './probation.js';
import { failureHandling } from './install-failures.js';
import { INSTALL_TABLE, mayMove, START_PHASE, type InstallHandlers, type InstallStep } from './install-table.js';
import { refuse } from './refused.js';
import { testFreeze, testPause } from './test-pause.js';
import type { Reporter } from './reporter.js';
import type { ModelRuntime } from './runtime.js';
import type { InstalledModel, StateStore } from './state-store.js';
import { diskFull, type AgentStorage } from './storage.js';

/**
 * Decompress a verified payload file; the result is checked against the manifest by the installer, whoever made it.
 * `prepare`, if present, is told as soon as a payload has verified, before staging is persisted: a
 * shared unpacker (the simulator's) may start work that is not this agent's own (nothing in dataDir).
 */
export type Unpacker = ((payload: string, dst: string, manifest: Manifest, storage: AgentStorage) => Promise<{ length: number; sha256: string }>) & {
  prepare?: (payload: string, manifest: Manifest, storage: AgentStorage) => void;
};

export interface Rejection { code: string; message: string; phase: Phase | 'assignment'; bundleId?: string; counter?: number }

export interface InstallerDeps {
  check: CheckContext;
  store: StateStore;
  runtime: ModelRuntime;
  active: ActiveModel<ModelEntry>;
  client: BrokerClient | null;
  reporter: Reporter;
  fetch: FetchSettings;
  maxBatch: number;
  goldenTolerance: number;
  now: () => number;
  onInstalled: (info: InstalledModel & { counter: number }) => void;
  onRejected: (r: Rejection) => void;
  onChunkRequest?: (bundleId: string, chunks: readonly number[]) => void;
  /** Probation after a swap (ms 0 = commit at once). */
  probation?: ProbationLimits & { ms: number };
  /** Free bytes to leave after staging. */
  diskReserveBytes?: number;
  /** Decompress a verified payload into `dst` (bounded by maxRawBytes); the simulator shares work between agents. */
  unpack?: Unpacker;
  /** Check received chunks and the payload hash (default payloadCheck; the simulator shares work between agents). */
  payloadCheck?: PayloadCheckFactory;
  /** Re-open an installed slot (rollback to the previous model). */
  loadInstalled?: (m: InstalledModel) => Promise<ModelEntry>;
  /** p95 latency of a model's recent predictions (the probation baseline), or null. */
  baselineP95?: (bundleId: string) => number | null;
}

interface Job { checked: CheckedAssignment; resume: boolean; abort: AbortController }

/** One run of the install table: what the handlers hand on to the next phase. */
interface Run {
  readonly job: Job;
  readonly a: Assignment;
  readonly manifest: Manifest;
  readonly info: InstalledModel;
  /** The phase being run, and the one before it in this run. */
  phase: Phase;
  from: Phase;
  /** Where this run begins, when decided before the accept write (a fresh assignment). */
  startAt: Phase | null;
  fetched: FetchedPayload | null;
  /** The model being decompressed while its chunks arrive (disk storage), or null; `dropped` while a given-up one stops. */
  unpacking: DecompressFeed | null;
  dropped: Promise<void> | null;
  entry: ModelEntry | null;
  swapped: boolean;
  installed: InstalledModel | null;
  baseline: number | null;
  until: number;
}

const IN_FLIGHT: readonly Phase[] = IN_FLIGHT_PHASES;

export class Installer {
  readonly #d: InstallerDeps;
  #running: Job | null = null;
  #pending: Job | null = null;
  #loop: Promise<void> | null = null;
  /** Assign messages being checked, one after the other (handleAssign). */
  #checks: Promise<void> = Promise.resolve();
  /** Set by stop(): an assign message still arriving (the MQTT client ends after the installer) is not acted on. */
  #stopped = false;
  #fetch: ChunkFetch | null = null;
  #progress: { have: number; total: number } | null = null;
  #lastRejection: { code: string; at: number; bundleId?: string } | null = null;
  #probation: Probation | null = null;
  #probationSettled: Promise<void> = Promise.resolve();

  constructor(deps: InstallerDeps) { this.#d = deps; }

  get probation(): { bundleId: string; until: number; requests: number; errors: number } | null {
    const p = this.#probation;
    return p ? { bundleId: p.bundleId, until: p.until, requests: p.requests, errors: p.errors } : null;
  }

  /** One finished prediction (the probation window watches the model it judges). */
  observePredict(bundleId: string, latencyMs: number, failed: boolean): void {
    if (this.#probation?.bundleId === bundleId) this.#probation.observe(latencyMs, failed);
  }

  /** Boot found the agent in probation (recovery table): watch the model again for a full window. */
  resumeProbation(): void {
    const inst = this.#d.store.state.install;
    const active = this.#d.store.state.active;
    if (!inst || inst.phase !== 'probation' || !active || active.bundleId !== inst.bundleId) return;
    this.#startProbation(active, inst.counter, this.#d.now() + (this.#d.probation?.ms ?? 0), null);
  }

  get progress() { return this.#progress; }
  get lastRejection() { return this.#lastRejection; }
  /** Resolves when no install is running or queued (tests, stop). */
  async idle(): Promise<void> {
    await this.#checks;
    while (this.#loop) await this.#loop;
  }

  /**
   * A message on this device's assign topic. Never throws: bad input becomes a coded rejection.
   * Messages are taken in arrival order; their signatures are checked on libuv's threadpool,
   * not on the loop that serves predictions.
   */
  handleAssign(bytes: Uint8Array): void {
    if (this.#stopped) return;
    this.#checks = this.#checks.then(async () => {
      // Not in the same turn as the MQTT read that brought it: requests that arrived meanwhile go first.
      await nextTurn();
      let checked: CheckedAssignment;
      try {
        // Checked against one root throughout; a root taken while the signatures were on the threadpool (one that
        // revokes the hub key that signed this message, and resets the counter) means checking again against it.
        for (;;) {
          const root = this.#d.check.root;
          checked = await checkAssignMessageAsync(bytes, { ...this.#d.check, root });
          if (this.#d.check.root === root) break;
        }
      } catch (e) {
        this.#reject(e, 'assignment');
        return;
      }
      // Checked while the agent stopped: no install starts on a stopped agent (the retained message comes again).
      if (!this.#stopped) this.#accept(checked);
    }).catch((e: unknown) => { try { this.#reject(e, 'assignment'); } catch { /* reporting itself failed */ } });
  }

  #accept(checked: CheckedAssignment): void {
    const a = checked.assignment;
    const st = this.#d.store.state;
    const queued = this.#pending ?? this.#running;
    const last = queued ? queued.checked.assignment : st.assignment;
    const lastCounter = Math.max(st.counter, queued?.checked.assignment.counter ?? 0);

    // The same assignment again: the broker re-delivers the retained message on every
    // subscribe. Resume an unfinished install, otherwise there is nothing to do.
    if (last && a.counter === lastCounter && a.bundleId === last.bundleId) {
      if (queued) return;
      const inst = st.install;
      const unfinished = inst !== null && inst.counter === a.counter && st.active?.bundleId !== a.bundleId
        && (IN_FLIGHT.includes(inst.phase) || (inst.phase === 'failed' && inst.error !== null && failureHandling(inst.error).retryOnRedelivery));
      if (unfinished) this.#enqueue({ checked, resume: true, abort: new AbortController() });
      return;
    }
    const ref = { counter: a.counter, bundleId: a.bundleId };
    const refusedFor = st.refused[a.bundleId];
    if (refusedFor !== undefined && st.active?.bundleId !== a.bundleId) {
      // Failed here for good before: skip it, with an event, rather than fetch and fail again.
      this.#reject(agentError('AGENT_ERR_BUNDLE_REFUSED', `bundle ${a.bundleId.slice(0, 12)}… failed here with ${refusedFor}`, ref), 'assignment');
      return;
    }
    if (this.#d.now() > a.expiresAt) {
      this.#reject(agentError('AGENT_ERR_ASSIGNMENT_EXPIRED', `expired at ${new Date(a.expiresAt).toISOString()}`, ref), 'assignment');
      return;
    }
    // Checked before the counter: after a reset the counter is 0 and would let any older message through.
    if ((a.rootVersion ?? 0) < st.counterEpoch) {
      this.#reject(agentError('AGENT_ERR_ASSIGNMENT_BEFORE_RESET', `signed under root v${a.rootVersion ?? '(none)'}; this device reset its counter at root v${st.counterEpoch}`, ref), 'assignment');
      return;
    }
    if (a.counter <= lastCounter) {
      this.#reject(agentError('AGENT_ERR_ASSIGNMENT_REPLAY', `counter ${a.counter} is not above ${lastCounter}`, ref), 'assignment');
      return;
    }
    // A newer assignment for a different bundle cancels the install in progress
    // (before its swap); a re-signed one for the same bundle just waits for it.
    const r = this.#running;
    if (r && r.checked.assignment.bundleId !== a.bundleId) r.abort.abort();
    this.#enqueue({ checked, resume: false, abort: new AbortController() });
  }

  onChunk(bundleId: string, index: number, bytes: Buffer): void {
    if (this.#fetch?.bundleId === bundleId) this.#fetch.onChunk(index, bytes);
  }

  /** The connection was lost and is back: the fetch running now subscribes and asks again. */
  onReconnect(): void { this.#fetch?.onReconnect(); }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#checks;
    if (this.#pending) this.#pending = null;
    this.#running?.abort.abort();
    await this.idle();
    // The persisted phase stays "probation": the next boot watches the model again.
    this.#probation?.cancel('stopped');
    await this.#probationSettled;
  }

  #enqueue(job: Job): void {
    this.#pending = job;
    // An install that fails outside its own error handling (a state write on a full disk) must not
    // become an unhandled rejection that ends the daemon: it is reported like any refusal.
    this.#loop ??= this.#drain().catch((e: unknown) => { try { this.#reject(e, 'staging'); } catch { /* reporting itself failed */ } }).finally(() => { this.#loop = null; });
  }

  async #drain(): Promise<void> {
    while (this.#pending) {
      const job = this.#pending;
      this.#pending = null;
      this.#running = job;
      try {
        await this.#install(job);
      } finally {
        this.#running = null;
        this.#fetch = null;
        this.#progress = null;
      }
    }
  }

  async #install(job: Job): Promise<void> {
    const { store, reporter } = this.#d;
    const a = job.checked.assignment;
    const { manifest } = job.checked.verified;
    const info: InstalledModel = { bundleId: a.bundleId, name: manifest.name, version: manifest.version, rawSha256: manifest.payload.rawSha256, installedAt: 0 };
    if (this.#probation) {
      // A newer assignment ends the window of the model on probation: it is committed as it stands.
      this.#probation.cancel('superseded');
      await this.#probationSettled;
    }
    const run: Run = { job, a, manifest, info, phase: START_PHASE, from: START_PHASE, startAt: null, fetched: null, unpacking: null, dropped: null, entry: null, swapped: false, installed: null, baseline: null, until: 0 };
    if (!job.resume) {
      // Where the run begins is decided before accepting, so that the accept write records that
      // phase and the first phase needs no fsynced write of its own (a swap back to a kept model:
      // one state write fewer). A check that fails here is made again, as the start row's work.
      run.startAt = await this.#startAt(a.bundleId, manifest).catch(() => null);
      // Accepting is persisted first: from here on a lower counter is a replay, even after a restart.
      await store.update((s) => {
        s.counter = a.counter;
        s.assignment = { bundleId: a.bundleId, counter: a.counter, name: a.name, version: a.version, rolloutId: a.rolloutId, ring: a.ring, acceptedAt: this.#d.now() };
        s.install = { bundleId: a.bundleId, counter: a.counter, name: a.name, version: a.version, phase: run.startAt ?? 'fetching', startedAt: this.#d.now(), updatedAt: this.#d.now(), error: null };
      });
      reporter.event('assignment-accepted', { bundleId: a.bundleId, counter: a.counter });
    }
    try {
      // The transition table drives the run (install-table.ts): each handler names the next phase.
      let next: Phase | null = START_PHASE;
      for (let first = true; next !== null; first = false) {
        const step: InstallStep = INSTALL_TABLE[next];
        if (!first && !mayMove(run.phase, next)) throw agentError('AGENT_ERR_INTERNAL', `the install table has no move from ${run.phase} to ${next}`);
        run.from = run.phase;
        run.phase = next;
        if (step.persistFirst) await this.#phase(a, next);
        if (step.handler === null) throw agentError('AGENT_ERR_INTERNAL', `the install table gives ${next} no handler`);
        next = await this.#handlers[step.handler](run);
      }
    } catch (e) {
      await this.#failed(run, e);
    }
  }

  /** The table's handlers; their bodies are the install's work, phase by phase. */
  readonly #handlers: InstallHandlers<Run> = {
    start: async (run) => run.startAt ?? this.#startAt(run.a.bundleId, run.manifest),
    fetch: async (run) => {
      run.fetched = await this.#fetchPayload(run);
      return 'verifying';
    },
    verify: async (run) => {
      const fetched = run.fetched!;
      checkPayloadHash(run.manifest, fetched.sha256);
      this.#d.unpack?.prepare?.(fetched.path, run.manifest, this.#d.store.storage);
      checkAbort(run.job);
      return 'staging';
    },
    stage: async (run) => {
      const { a, job, manifest, info } = run;
      const { store } = this.#d;
      if (run.fetched) await this.#unpack(run, run.fetched.path);
      checkAbort(job);
      run.entry = await openModel(this.#d.runtime, await store.storage.modelSource(store.modelFile(a.bundleId)), manifest, { ...info, installedAt: this.#d.now() }, this.#d.maxBatch);
      await smokeTest(run.entry, this.#d.goldenTolerance);
      checkAbort(job);
      return 'swapping';
    },
    swap: async (run) => {
      const { store, active, reporter } = this.#d;
      // From here the swap is not cancelled: it is one pointer move and one state write.
      const entry = run.entry!;
      const installed = entry.info;
      const old = active.current;
      // Probation needs a model to go back to: a first install commits at once.
      const pr = this.#d.probation;
      const probe = pr !== undefined && pr.ms > 0 && store.state.active !== null && store.state.active.bundleId !== installed.bundleId;
      // The old model's recent p95 (a sort of its latency window) is read only for a probation that compares against it.
      const baseline = probe && old ? this.#d.baselineP95?.(old.info.bundleId) ?? null : null;
      void active.swap(entry);
      run.swapped = true;
      // Crash suite: the new session serves, the persisted pointer still names the old model.
      await testPause('swapping:switched');
      const until = this.#d.now() + (pr?.ms ?? 0);
      await store.update((s) => {
        if (s.active && s.active.bundleId !== installed.bundleId) s.previous = s.active;
        s.active = installed;
        s.install = { ...s.install!, phase: probe ? 'probation' : 'committed', updatedAt: this.#d.now(), error: null, recoveries: 0, ...(probe ? { probationUntil: until } : {}) };
      });
      reporter.report();
      Object.assign(run, { installed, baseline, until });
      return probe ? 'probation' : 'committed';
    },
    watch: async (run) => {
      this.#startProbation(run.installed!, run.a.counter, run.until, run.baseline);
      await testPause('probation');
      await this.#cleanup();
      return null;
    },
    commit: async (run) => {
      // The bundle was active already (a re-signed assignment): only the install record changes.
      if (run.from === START_PHASE) {
        await this.#phase(run.a, 'committed');
        return null;
      }
      await this.#committed(run.installed!, run.a.counter);
      await this.#cleanup();
      return null;
    },
  };

  /** A run failed: what it leaves and what it does next follow the code's failure class (install-failures.ts). */
  async #failed(run: Run, e: unknown): Promise<void> {
    const { store, reporter } = this.#d;
    const { a, entry, phase } = run;
    if (!run.swapped && entry) await entry.model.release().catch(() => {});
    // Stopped before the folder it writes into is removed.
    await this.#dropUnpacking(run);
    await store.storage.remove(`${store.modelDir(a.bundleId)}.partial`).catch(() => {});
    if (e instanceof AbortedError) return;
    const err = isFleetcastError(e) ? e : agentError('AGENT_ERR_INTERNAL', message(e));
    const handling = failureHandling(err.code);
    await store.update((s) => {
      if (s.install?.counter === a.counter) s.install = { ...s.install, phase: 'failed', updatedAt: this.#d.now(), error: err.code };
      s.lastError = { code: err.code, at: this.#d.now(), bundleId: a.bundleId };
    }).catch(() => {});
    if (handling.refuseBundle) await store.update((s) => refuse(s, a.bundleId, err.code)).catch(() => {});
    if (!handling.keepStaging) await store.removeStaging(a.bundleId).catch(() => {});
    // A model that failed its checks leaves nothing behind (unless it is one we keep for rollback).
    const st = store.state;
    if (st.active?.bundleId !== a.bundleId && st.previous?.bundleId !== a.bundleId) {
      await store.storage.remove(store.modelDir(a.bundleId)).catch(() => {});
    }
    reporter.report();
    reporter.event(INSTALL_TABLE[phase].failedEvent ?? 'stage-failed', { code: err.code, bundleId: a.bundleId, counter: a.counter, detail: err.message });
    this.#d.onRejected({ code: err.code, message: err.message, phase, bundleId: a.bundleId, counter: a.counter });
    await testPause('failed');
  }

  /** Persist the phase before its work starts, then tell the hub. */
  async #phase(a: Assignment, phase: Phase): Promise<void> {
    const inst = this.#d.store.state.install;
    // Accepting an assignment persists the phase the run starts in already: a second fsync'd write of the same phase adds nothing.
    if (!(inst?.counter === a.counter && inst.phase === phase && inst.error === null)) {
      await this.#d.store.update((s) => {
        if (s.install?.counter === a.counter) s.install = { ...s.install, phase, updatedAt: this.#d.now(), error: null };
      });
    }
    this.#d.reporter.report();
    await testPause(phase);
  }

  async #committed(m: InstalledModel, counter: number): Promise<void> {
    this.#d.reporter.event('installed', { bundleId: m.bundleId, counter });
    this.#d.onInstalled({ ...m, counter });
    await testPause('committed');
  }

  #startProbation(m: InstalledModel, counter: number, until: number, baselineP95: number | null): void {
    const pr = this.#d.probation ?? { ms: 0, minRequests: 1, maxErrorRate: 1, maxLatencyRatio: Infinity };
    const p = new Probation({ bundleId: m.bundleId, until, now: this.#d.now(), limits: pr, baselineP95 });
    this.#probation = p;
    this.#probationSettled = p.done.then((v) => this.#afterProbation(p, m, counter, v)).catch(() => {});
  }

  /** Commit, or roll back to the previous slot by ourselves, and say which and why. */
  async #afterProbation(p: Probation, m: InstalledModel, counter: number, v: Verdict): Promise<void> {
    if (this.#probation === p) this.#probation = null;
    if (v.ok === null && v.reason === 'stopped') return;
    const { store, reporter, active } = this.#d;
    const now = this.#d.now();
    if (v.ok !== false) {
      await store.update((s) => {
        if (s.install?.counter === counter && s.install.bundleId === m.bundleId) s.install = { ...s.install, phase: 'committed', updatedAt: now, error: null };
      });
      reporter.report();
      await this.#committed(m, counter);
      return;
    }
    const prev = store.state.previous;
    let back: ModelEntry | null = null;
    let loadErr: string | null = null;
    if (prev && this.#d.loadInstalled) {
      try { back = await this.#d.loadInstalled(prev); } catch (e) { loadErr = errorCode(e); }
    }
    if (back) void active.swap(back);
    await store.update((s) => {
      if (back) { s.active = s.previous; s.previous = null; }
      refuse(s, m.bundleId, v.code);
      if (s.install?.counter === counter) s.install = { ...s.install, phase: back ? 'rolled-back' : 'failed', updatedAt: now, error: v.code };
      s.lastError = { code: v.code, at: now, bundleId: m.bundleId };
    });
    reporter.report();
    const detail = `${v.detail}${back ? '' : `; the previous model could not be loaded (${loadErr ?? 'none kept'}), the new one keeps serving`}`;
    reporter.event(back ? 'rolled-back' : 'stage-failed', { code: v.code, bundleId: m.bundleId, counter, detail });
    this.#d.onRejected({ code: v.code, message: detail, phase: 'probation', bundleId: m.bundleId, counter });
    await testPause('rolled-back');
    if (back) await store.storage.remove(store.modelDir(m.bundleId)).catch(() => {});
  }

  async #fetchPayload(run: Run): Promise<FetchedPayload> {
    const { job, manifest } = run;
    const { store, client } = this.#d;
    const bundleId = job.checked.assignment.bundleId;
    await this.#checkDisk(manifest);
    if (!client) throw agentError('AGENT_ERR_FETCH_TIMEOUT', 'the agent runs without a broker');
    this.#d.reporter.event('fetch-started', { bundleId, counter: job.checked.assignment.counter });
    const check = await this.#unpackWhileFetching(run);
    const f = new ChunkFetch(manifest, bundleId, {
      client, store, deviceId: this.#d.check.deviceId, settings: this.#d.fetch, signal: job.abort.signal,
      onProgress: (have, total) => { this.#progress = { have, total }; this.#d.reporter.progress(); },
      onRequest: (chunks) => this.#d.onChunkRequest?.(bundleId, chunks),
      ...(check ? { check } : {}),
    });
    this.#fetch = f;
    try {
      return await f.run();
    } finally {
      this.#fetch = null;
    }
  }

  /**
   * Where the storage can (disk), decompress the payload into models/<id>.partial while it arrives: the
   * fetch hands each chunk, once it matched its signed hash, in index order (payload-check.ts's append)
   * to a decompression fed as it goes (between the fetch's other work: while the transfer waits on the
   * network), bounded by the signed raw length. Nothing it writes is trusted
   * before the stage row: the payload hash is checked first (verify row), then the model's length and raw
   * sha256, then it is sealed and renamed into place, as when decompressing after the fetch. Returns the
   * payload check the fetch uses (undefined: the default, no streaming).
   */
  async #unpackWhileFetching(run: Run): Promise<PayloadCheckFactory | undefined> {
    const { store } = this.#d;
    const open = store.storage.streamDecompress;
    // A shared unpacker (the simulator) decompresses each payload once for many agents, after verifying.
    if (this.#d.unpack || !open) return this.#d.payloadCheck;
    const partial = `${store.modelDir(run.a.bundleId)}.partial`;
    await store.storage.remove(partial);
    await store.storage.makeDir(partial);
    run.unpacking = open.call(store.storage, join(partial, 'model.onnx'), { maxRawBytes: run.manifest.payload.rawLength });
    const base = this.#d.payloadCheck ?? payloadCheck;
    return (m) => {
      const c = base(m);
      return {
        chunk: (i, bytes) => c.chunk(i, bytes),
        digest: () => c.digest(),
        append: (i, bytes) => {
          c.append(i, bytes);
          // Too far behind (more than its in-flight bound waiting): give the stream up, decompress after the fetch.
          if (run.unpacking && !run.unpacking.write(bytes)) void this.#dropUnpacking(run);
        },
      };
    };
  }

  /** Stop a decompression started during the fetch (given up, or the run failed); what it wrote is removed by the caller. */
  async #dropUnpacking(run: Run): Promise<void> {
    const t = run.unpacking;
    if (t) {
      run.unpacking = null;
      run.dropped = t.abort().catch(() => {});
    }
    await run.dropped;
  }

  /** The staging file + raw model must fit, or fail before writing anything. */
  async #checkDisk(m: Manifest): Promise<void> {
    const need = m.payload.compressedLength + m.payload.rawLength + (this.#d.diskReserveBytes ?? 0);
    const free = await this.#d.store.storage.freeBytes(this.#d.store.dataDir);
    if (free < need) throw agentError('AGENT_ERR_DISK_SPACE', `need ${need} bytes, ${free} free in ${this.#d.store.dataDir}`);
  }

  /**
   * Decompress (bounded by the signed raw length) into models/<id>.partial, check, then rename into place;
   * or finish the decompression the fetch started (#unpackWhileFetching) and check it the same way.
   */
  async #unpack(run: Run, payload: string): Promise<void> {
    const { store } = this.#d;
    const fs = store.storage;
    const v: VerifiedManifest = run.job.checked.verified;
    const m = v.manifest;
    const dir = store.modelDir(run.a.bundleId);
    const partial = `${dir}.partial`;
    const file = join(partial, 'model.onnx');
    const streamed = run.unpacking;
    run.unpacking = null;
    if (!streamed) {
      await run.dropped;
      await fs.remove(partial);
      await fs.makeDir(partial);
    }
    let r: { length: number; sha256: string };
    try {
      if (streamed) {
        // Crash suite: freeze with the model file made (or still being made) in .partial, not renamed.
        testFreeze('staging:mid-unpack');
        r = await streamed.end();
      } else {
        r = this.#d.unpack
          ? await this.#d.unpack(payload, file, m, fs)
          // Crash suite: freeze with the first decompressed bytes written (the model file half made, not renamed).
          : await fs.decompress(payload, file, { maxRawBytes: m.payload.rawLength, onOutput: () => testFreeze('staging:mid-unpack') });
      }
    } catch (e) {
      // A full disk while the model is written is not a bad bundle: AGENT_ERR_DISK_SPACE (transient, the same
      // assignment resumes once there is room), where AGENT_ERR_DECOMPRESS would refuse the bundle here for good.
      throw diskFull(e) ?? agentError('AGENT_ERR_DECOMPRESS', message(e), { cause: errorCode(e) });
    }
    if (r.length !== m.payload.rawLength || r.sha256 !== m.payload.rawSha256) {
      throw agentError('AGENT_ERR_PAYLOAD_HASH', `decompressed model is ${r.length} bytes with sha256 ${r.sha256.slice(0, 12)}…, the manifest says ${m.payload.rawLength} bytes, ${m.payload.rawSha256.slice(0, 12)}…`);
    }
    // The decompressor (or a shared unpacker) created the file with the umask's mode: the model is private (0600), and durable.
    // The manifest is written and synced alongside (two fsyncs in flight, not one after the other), with no temp
    // file and rename of its own: nothing reads a .partial folder, and one a power cut left is remade from scratch.
    // One sync of the folder then makes both entries durable before the rename installs it.
    const manifestFile = join(partial, 'manifest.json');
    await Promise.all([fs.seal(file), fs.put(manifestFile, Buffer.from(JSON.stringify(v.envelope))).then(() => fs.seal(manifestFile))])
      .catch((e: unknown) => { throw diskFull(e) ?? e; });
    await fs.syncFolder(partial);
    await fs.remove(dir);
    await fs.rename(partial, dir);
  }

  /** The start row's decision: the bundle is active already, an unpacked model is reusable, or fetch. */
  async #startAt(bundleId: string, m: Manifest): Promise<Phase> {
    if (this.#d.store.state.active?.bundleId === bundleId) return 'committed';
    return (await this.#unpackedValid(bundleId, m)) ? 'staging' : 'fetching';
  }

  /** An unpacked model from an earlier (interrupted or previous) install is reused if it still hashes right. */
  async #unpackedValid(bundleId: string, m: Manifest): Promise<boolean> {
    const { store } = this.#d;
    const file = store.modelFile(bundleId);
    const st = await store.storage.stat(file);
    if (!st || st.size !== m.payload.rawLength) return false;
    if (!(await store.storage.stat(store.modelManifest(bundleId)))) return false;
    // Hashed on every reuse, even of a file this agent checked itself: no stat tells that the bytes are still those.
    // A write through a shared mapping to a page already dirty moves neither mtime nor ctime, and coarse timestamps
    // (1-2 s on some filesystems, a clock tick on older kernels) hide a same-size rewrite within one tick.
    return (await store.storage.hash(file)).sha256 === m.payload.rawSha256;
  }

  /** Keep the active and previous models (for rollback); drop other models and stale staging. */
  async #cleanup(): Promise<void> {
    const { store } = this.#d;
    const keep = new Set([store.state.active?.bundleId, store.state.previous?.bundleId, this.#pending?.checked.assignment.bundleId].filter(Boolean));
    for (const sub of ['models', 'staging']) {
      const dir = join(store.dataDir, sub);
      for (const name of await store.storage.list(dir)) {
        if (sub === 'models' && keep.has(name)) continue;
        if (sub === 'staging' && name === this.#pending?.checked.assignment.bundleId) continue;
        await store.storage.remove(join(dir, name)).catch(() => {});
      }
    }
  }

  #reject(e: unknown, phase: Rejection['phase']): void {
    const err = isFleetcastError(e) ? e : agentError('AGENT_ERR_INTERNAL', message(e));
    const bundleId = typeof err.details.bundleId === 'string' ? err.details.bundleId : undefined;
    const counter = typeof err.details.counter === 'number' ? err.details.counter : undefined;
    this.#lastRejection = { code: err.code, at: this.#d.now(), ...(bundleId ? { bundleId } : {}) };
    this.#d.reporter.event(failureHandling(err.code).rejectEvent, { code: err.code, detail: err.message, ...(bundleId ? { bundleId } : {}), ...(counter !== undefined ? { counter } : {}) });
    this.#d.reporter.report();
    this.#d.onRejected({ code: err.code, message: err.message, phase, ...(bundleId ? { bundleId } : {}), ...(counter !== undefined ? { counter } : {}) });
  }
}

function checkAbort(job: Job): void {
  if (job.abort.signal.aborted) throw new AbortedError();
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
