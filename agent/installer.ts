/**
 * The install state machine (DESIGN "Agent install state machine"):
 * accept → fetching → verifying → staging → swapping → committed, or failed.
 * Each phase is persisted BEFORE its work, so after a power cut the agent
 * knows where it was; work already done is found again on disk (hash-valid
 * staged chunks, a hash-valid unpacked model) and not repeated. A later issue
 * adds probation/rollback between swapping and committed and a boot recovery
 * table; both slot in here without changing the phases before them.
 *
 * Any failure: a coded event, nothing new loaded, the old model keeps serving.
 */
import { mkdir, open, rename, rm, readdir, statfs, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { decompressFile } from '../bundles/compress.js';
import { verifyPayloadFile, type VerifiedManifest } from '../bundles/verify.js';
import { errorCode, isFleetcastError } from '../protocol/errors.js';
import type { Manifest } from '../protocol/manifest.js';
import type { Assignment, Phase } from '../protocol/messages.js';
import type { ActiveModel } from './active-model.js';
import { checkAssignMessage, type CheckContext, type CheckedAssignment } from './assignment-check.js';
import type { BrokerClient } from './broker-client.js';
import { agentError } from './errors.js';
import { AbortedError, ChunkFetch, type FetchSettings } from './fetcher.js';
import { openModel, sha256File, smokeTest, type ModelEntry } from './model-loader.js';
import type { EventKind, Reporter } from './reporter.js';
import type { ModelRuntime } from './runtime.js';
import { atomicWrite, fsyncDir, type InstalledModel, type StateStore } from './state-store.js';

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
}

interface Job { checked: CheckedAssignment; resume: boolean; abort: AbortController }

/** Failures worth retrying when the same assignment is delivered again (after a reconnect). */
const TRANSIENT = new Set(['AGENT_ERR_FETCH_TIMEOUT', 'AGENT_ERR_DISK_SPACE', 'AGENT_ERR_INTERNAL']);
const UNFINISHED: readonly Phase[] = ['fetching', 'verifying', 'staging', 'swapping'];
const SECURITY = new Set(['AGENT_ERR_ASSIGNMENT_SIGNATURE', 'AGENT_ERR_MANIFEST_SIGNATURE', 'AGENT_ERR_ASSIGNMENT_REPLAY', 'AGENT_ERR_ASSIGNMENT_WRONG_DEVICE', 'AGENT_ERR_MANIFEST_MISMATCH']);
const FAILED_EVENT: Partial<Record<Phase, EventKind>> = { fetching: 'fetch-failed', verifying: 'verify-failed', staging: 'stage-failed', swapping: 'stage-failed' };

export class Installer {
  readonly #d: InstallerDeps;
  #running: Job | null = null;
  #pending: Job | null = null;
  #loop: Promise<void> | null = null;
  #fetch: ChunkFetch | null = null;
  #progress: { have: number; total: number } | null = null;
  #lastRejection: { code: string; at: number; bundleId?: string } | null = null;

  constructor(deps: InstallerDeps) { this.#d = deps; }

  get progress() { return this.#progress; }
  get lastRejection() { return this.#lastRejection; }
  /** Resolves when no install is running or queued (tests, stop). */
  async idle(): Promise<void> { while (this.#loop) await this.#loop; }

  /** A message on this device's assign topic. Never throws: bad input becomes a coded rejection. */
  handleAssign(bytes: Uint8Array): void {
    let checked: CheckedAssignment;
    try {
      checked = checkAssignMessage(bytes, this.#d.check);
    } catch (e) {
      this.#reject(e, 'assignment');
      return;
    }
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
        && (UNFINISHED.includes(inst.phase) || (inst.phase === 'failed' && inst.error !== null && TRANSIENT.has(inst.error)));
      if (unfinished) this.#enqueue({ checked, resume: true, abort: new AbortController() });
      return;
    }
    const ref = { counter: a.counter, bundleId: a.bundleId };
    if (this.#d.now() > a.expiresAt) {
      this.#reject(agentError('AGENT_ERR_ASSIGNMENT_EXPIRED', `expired at ${new Date(a.expiresAt).toISOString()}`, ref), 'assignment');
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

  onReconnect(): void { this.#fetch?.onReconnect(); }

  async stop(): Promise<void> {
    if (this.#pending) this.#pending = null;
    this.#running?.abort.abort();
    await this.idle();
  }

  #enqueue(job: Job): void {
    this.#pending = job;
    this.#loop ??= this.#drain().finally(() => { this.#loop = null; });
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
    const { store, active, reporter } = this.#d;
    const a = job.checked.assignment;
    const { manifest } = job.checked.verified;
    const info: InstalledModel = { bundleId: a.bundleId, name: manifest.name, version: manifest.version, rawSha256: manifest.payload.rawSha256, installedAt: 0 };
    if (!job.resume) {
      // Accepting is persisted first: from here on a lower counter is a replay, even after a restart.
      await store.update((s) => {
        s.counter = a.counter;
        s.assignment = { bundleId: a.bundleId, counter: a.counter, name: a.name, version: a.version, rolloutId: a.rolloutId, ring: a.ring, acceptedAt: this.#d.now() };
        s.install = { bundleId: a.bundleId, counter: a.counter, name: a.name, version: a.version, phase: 'fetching', startedAt: this.#d.now(), updatedAt: this.#d.now(), error: null };
      });
      reporter.event('assignment-accepted', { bundleId: a.bundleId, counter: a.counter });
    }
    if (store.state.active?.bundleId === a.bundleId) {
      await this.#phase(a, 'committed');
      return;
    }
    let phase: Phase = 'fetching';
    let entry: ModelEntry | null = null;
    let swapped = false;
    try {
      if (!(await this.#unpackedValid(a.bundleId, manifest))) {
        await this.#phase(a, (phase = 'fetching'));
        const payload = await this.#fetchPayload(job, manifest);
        await this.#phase(a, (phase = 'verifying'));
        try {
          await verifyPayloadFile(manifest, payload);
        } catch (e) {
          throw agentError('AGENT_ERR_PAYLOAD_HASH', message(e), { cause: errorCode(e) });
        }
        checkAbort(job);
        await this.#phase(a, (phase = 'staging'));
        await this.#unpack(a.bundleId, job.checked.verified, payload);
      } else {
        await this.#phase(a, (phase = 'staging'));
      }
      checkAbort(job);
      entry = await openModel(this.#d.runtime, store.modelFile(a.bundleId), manifest, { ...info, installedAt: this.#d.now() }, this.#d.maxBatch);
      await smokeTest(entry, this.#d.goldenTolerance);
      checkAbort(job);
      await this.#phase(a, (phase = 'swapping'));
      // From here the swap is not cancelled: it is one pointer move and one state write.
      void active.swap(entry);
      swapped = true;
      const installed = entry.info;
      await store.update((s) => {
        if (s.active && s.active.bundleId !== installed.bundleId) s.previous = s.active;
        s.active = installed;
        s.install = { ...s.install!, phase: 'committed', updatedAt: this.#d.now(), error: null };
      });
      reporter.report();
      reporter.event('installed', { bundleId: a.bundleId, counter: a.counter });
      this.#d.onInstalled({ ...installed, counter: a.counter });
      await this.#cleanup();
    } catch (e) {
      if (!swapped && entry) await entry.model.release().catch(() => {});
      await rm(`${store.modelDir(a.bundleId)}.partial`, { recursive: true, force: true }).catch(() => {});
      if (e instanceof AbortedError) return;
      const err = isFleetcastError(e) ? e : agentError('AGENT_ERR_INTERNAL', message(e));
      await store.update((s) => {
        if (s.install?.counter === a.counter) s.install = { ...s.install, phase: 'failed', updatedAt: this.#d.now(), error: err.code };
        s.lastError = { code: err.code, at: this.#d.now(), bundleId: a.bundleId };
      }).catch(() => {});
      if (!TRANSIENT.has(err.code) && err.code !== 'AGENT_ERR_CHUNK_HASH') await store.removeStaging(a.bundleId).catch(() => {});
      // A model that failed its checks leaves nothing behind (unless it is one we keep for rollback).
      const st = store.state;
      if (st.active?.bundleId !== a.bundleId && st.previous?.bundleId !== a.bundleId) {
        await rm(store.modelDir(a.bundleId), { recursive: true, force: true }).catch(() => {});
      }
      reporter.report();
      reporter.event(FAILED_EVENT[phase] ?? 'stage-failed', { code: err.code, bundleId: a.bundleId, counter: a.counter, detail: err.message });
      this.#d.onRejected({ code: err.code, message: err.message, phase, bundleId: a.bundleId, counter: a.counter });
    }
  }

  /** Persist the phase before its work starts, then tell the hub. */
  async #phase(a: Assignment, phase: Phase): Promise<void> {
    await this.#d.store.update((s) => {
      if (s.install?.counter === a.counter) s.install = { ...s.install, phase, updatedAt: this.#d.now(), error: null };
    });
    this.#d.reporter.report();
  }

  async #fetchPayload(job: Job, manifest: Manifest): Promise<string> {
    const { store, client } = this.#d;
    const bundleId = job.checked.assignment.bundleId;
    await this.#checkDisk(manifest);
    if (!client) throw agentError('AGENT_ERR_FETCH_TIMEOUT', 'the agent runs without a broker');
    this.#d.reporter.event('fetch-started', { bundleId, counter: job.checked.assignment.counter });
    const f = new ChunkFetch(manifest, bundleId, {
      client, store, deviceId: this.#d.check.deviceId, settings: this.#d.fetch, signal: job.abort.signal,
      onProgress: (have, total) => { this.#progress = { have, total }; this.#d.reporter.progress(); },
      onRequest: (chunks) => this.#d.onChunkRequest?.(bundleId, chunks),
    });
    this.#fetch = f;
    try {
      return await f.run();
    } finally {
      this.#fetch = null;
    }
  }

  /** Staged chunks + assembled payload + raw model must fit, or fail before writing anything. */
  async #checkDisk(m: Manifest): Promise<void> {
    const need = 2 * m.payload.compressedLength + m.payload.rawLength;
    const s = await statfs(this.#d.store.dataDir);
    const free = s.bavail * s.bsize;
    if (free < need) throw agentError('AGENT_ERR_DISK_SPACE', `need ${need} bytes, ${free} free in ${this.#d.store.dataDir}`);
  }

  /** Decompress (bounded by the signed raw length) into models/<id>.partial, check, then rename into place. */
  async #unpack(bundleId: string, v: VerifiedManifest, payload: string): Promise<void> {
    const { store } = this.#d;
    const m = v.manifest;
    const dir = store.modelDir(bundleId);
    const partial = `${dir}.partial`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    const file = join(partial, 'model.onnx');
    let r: { length: number; sha256: string };
    try {
      r = await decompressFile(payload, file, { maxRawBytes: m.payload.rawLength });
    } catch (e) {
      throw agentError('AGENT_ERR_DECOMPRESS', message(e), { cause: errorCode(e) });
    }
    if (r.length !== m.payload.rawLength || r.sha256 !== m.payload.rawSha256) {
      throw agentError('AGENT_ERR_PAYLOAD_HASH', `decompressed model is ${r.length} bytes with sha256 ${r.sha256.slice(0, 12)}…, the manifest says ${m.payload.rawLength} bytes, ${m.payload.rawSha256.slice(0, 12)}…`);
    }
    const fh = await open(file, 'r+');
    try { await fh.sync(); } finally { await fh.close(); }
    await atomicWrite(join(partial, 'manifest.json'), JSON.stringify(v.envelope));
    await rm(dir, { recursive: true, force: true });
    await rename(partial, dir);
    await fsyncDir(join(dir, '..'));
  }

  /** An unpacked model from an earlier (interrupted or previous) install is reused if it still hashes right. */
  async #unpackedValid(bundleId: string, m: Manifest): Promise<boolean> {
    const file = this.#d.store.modelFile(bundleId);
    const st = await stat(file).catch(() => null);
    if (!st || st.size !== m.payload.rawLength) return false;
    if (!(await stat(this.#d.store.modelManifest(bundleId)).catch(() => null))) return false;
    return (await sha256File(file)).sha256 === m.payload.rawSha256;
  }

  /** Keep the active and previous models (for rollback); drop other models and stale staging. */
  async #cleanup(): Promise<void> {
    const { store } = this.#d;
    const keep = new Set([store.state.active?.bundleId, store.state.previous?.bundleId, this.#pending?.checked.assignment.bundleId].filter(Boolean));
    for (const sub of ['models', 'staging']) {
      const dir = join(store.dataDir, sub);
      for (const name of await readdir(dir).catch(() => [])) {
        if (sub === 'models' && keep.has(name)) continue;
        if (sub === 'staging' && name === this.#pending?.checked.assignment.bundleId) continue;
        await rm(join(dir, name), { recursive: true, force: true }).catch(() => {});
      }
    }
  }

  #reject(e: unknown, phase: Rejection['phase']): void {
    const err = isFleetcastError(e) ? e : agentError('AGENT_ERR_INTERNAL', message(e));
    const bundleId = typeof err.details.bundleId === 'string' ? err.details.bundleId : undefined;
    const counter = typeof err.details.counter === 'number' ? err.details.counter : undefined;
    this.#lastRejection = { code: err.code, at: this.#d.now(), ...(bundleId ? { bundleId } : {}) };
    this.#d.reporter.event(SECURITY.has(err.code) ? 'security' : 'assignment-rejected', { code: err.code, detail: err.message, ...(bundleId ? { bundleId } : {}), ...(counter !== undefined ? { counter } : {}) });
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
