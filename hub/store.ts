/**
 * The hub's durable state: one SQLite file (`dataDir/hub.db`, WAL) and one blob
 * per bundle (`dataDir/blobs/<bundleId>.zst`, the compressed payload exactly as
 * the manifest hashes it). Schema changes are migrations keyed by user_version,
 * so an old data folder opens in a new hub.
 *
 * Counters live here because they must survive restarts: an agent refuses an
 * assignment whose counter it has passed (DESIGN.md "Trust"), so a hub that
 * forgot its counters would lock its fleet out.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, openSync, closeSync, fsyncSync, rmSync, existsSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseEnvelope, type Envelope } from '@fleetcast/protocol/envelope.js';
import { chunkCount, parseManifest, type Manifest } from '@fleetcast/protocol/manifest.js';
import type { DeviceEvent, StateReport } from '@fleetcast/protocol/messages.js';
import { makePrivateDir, PRIVATE_FILE_MODE } from '@fleetcast/signing/private-files.js';
import { hubError } from './errors.js';
import { assignmentFromRow, deviceFromRow, MIGRATIONS, type AssignmentRow, type BundleRow, type DeviceRow } from './store-schema.js';

export interface BundleRecord {
  id: string;
  name: string;
  version: number;
  envelope: Envelope;
  manifest: Manifest;
  compressedLength: number;
  rawLength: number;
  chunkSize: number;
  chunkCount: number;
  createdAt: number;
}

export interface DeviceRecord {
  id: string;
  state: StateReport;
  firstSeen: number;
  lastSeen: number;
  activeBundleId: string | null;
  phase: string;
  lastErrorCode: string | null;
}

export interface AssignmentRecord {
  deviceId: string;
  counter: number;
  bundleId: string;
  envelope: Envelope;
  rolloutId: string | null;
  ring: string | null;
  issuedAt: number;
  expiresAt: number;
}

/** What a caller signs for one device once the store has allocated its counter. */
export type SignAssignment = (deviceId: string, counter: number) => { envelope: Envelope; issuedAt: number; expiresAt: number };

function storeError(what: string, e: unknown): Error {
  const err = hubError('HUB_ERR_STORE', `${what}: ${(e as Error)?.message ?? String(e)}`);
  err.cause = e;
  return err;
}

export class HubStore {
  readonly dir: string;
  readonly blobDir: string;
  readonly tmpDir: string;
  private readonly db: Database.Database;
  // Bundles are immutable once stored, so their parsed manifests can be kept.
  private readonly bundleCache = new Map<string, BundleRecord>();

  private constructor(dir: string, db: Database.Database) {
    this.dir = dir;
    this.db = db;
    this.blobDir = join(dir, 'blobs');
    this.tmpDir = join(dir, 'tmp');
  }

  static open(dataDir: string): HubStore {
    let db: Database.Database;
    try {
      // Folders 0700, files 0600 (signing/private-files.ts): bundles before release and device records are not for other users.
      makePrivateDir(dataDir);
      makePrivateDir(join(dataDir, 'blobs'));
      // Uploads in progress when a hub died are garbage; blobs are only ever renamed into place.
      rmSync(join(dataDir, 'tmp'), { recursive: true, force: true });
      makePrivateDir(join(dataDir, 'tmp'));
      // SQLite would create the file 0644; it gives its -wal and -shm files the database file's mode, so create it 0600 first.
      closeSync(openSync(join(dataDir, 'hub.db'), 'a', PRIVATE_FILE_MODE));
      db = new Database(join(dataDir, 'hub.db'));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      const at = db.pragma('user_version', { simple: true }) as number;
      if (at > MIGRATIONS.length) throw new Error(`hub.db has schema version ${at}, newer than this hub (${MIGRATIONS.length}); run a newer hub`);
      for (let v = at; v < MIGRATIONS.length; v++) {
        db.transaction(() => { db.exec(MIGRATIONS[v]); db.pragma(`user_version = ${v + 1}`); })();
      }
    } catch (e) {
      throw storeError(`cannot open ${join(dataDir, 'hub.db')}`, e);
    }
    return new HubStore(dataDir, db);
  }

  close(): void {
    this.flushReports();
    if (this.db.open) this.db.close();
  }

  /** The open database, for feature stores that keep their own tables (CREATE TABLE IF NOT EXISTS, not the migration chain). */
  get sqlite(): Database.Database {
    // Queued device reports are written first, so direct readers see them.
    this.flushReports();
    return this.db;
  }

  // ---- bundles -----------------------------------------------------------

  blobPath(bundleId: string): string {
    return join(this.blobDir, `${bundleId}.zst`);
  }

  /** A fresh path under dataDir/tmp (same filesystem as blobs/, so rename is atomic). */
  tempPath(prefix: string): string {
    return join(this.tmpDir, `${prefix}-${randomBytes(8).toString('hex')}`);
  }

  /**
   * Copy `length` bytes at `offset` of `src` to the bundle's blob: temp file,
   * fsync, rename, fsync the folder, so a crash leaves the old state or the new
   * one and never a torn blob under its final name.
   */
  async putBlob(bundleId: string, src: string, offset: number, length: number): Promise<void> {
    const tmp = this.tempPath(`blob-${bundleId.slice(0, 12)}`);
    try {
      const source = length > 0 ? createReadStream(src, { start: offset, end: offset + length - 1 }) : Readable.from([]);
      await pipeline(source, createWriteStream(tmp, { flags: 'wx', mode: PRIVATE_FILE_MODE }));
      // fsync applies to the file, not the descriptor: a second descriptor flushes what the stream wrote.
      const fh = await open(tmp, 'r+');
      try { await fh.sync(); } finally { await fh.close(); }
      await rename(tmp, this.blobPath(bundleId));
      const d = openSync(this.blobDir, 'r');
      try { fsyncSync(d); } finally { closeSync(d); }
    } catch (e) {
      await rm(tmp, { force: true });
      throw storeError(`cannot write blob for bundle ${bundleId}`, e);
    }
  }

  hasBlob(bundleId: string): boolean {
    return existsSync(this.blobPath(bundleId));
  }

  /**
   * Record a verified bundle whose blob is already in place. Same id → already
   * there (idempotent); same name@version with another id → HUB_ERR_DUPLICATE_VERSION.
   */
  insertBundle(b: { id: string; envelope: Envelope; manifest: Manifest; createdAt: number }): { created: boolean; bundle: BundleRecord } {
    const run = this.db.transaction(() => {
      const same = this.getBundle(b.id);
      if (same) return { created: false, bundle: same };
      this.assertVersionFree(b.manifest.name, b.manifest.version, b.id);
      this.db.prepare(`INSERT INTO bundles (id, name, version, envelope, compressed_length, raw_length, chunk_size, chunk_count, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
        b.id, b.manifest.name, b.manifest.version, JSON.stringify(b.envelope), b.manifest.payload.compressedLength,
        b.manifest.payload.rawLength, b.manifest.payload.chunkSize, chunkCount(b.manifest), b.createdAt);
      return { created: true, bundle: this.getBundle(b.id)! };
    });
    return this.guard('cannot record bundle', () => run());
  }

  /** Throws HUB_ERR_DUPLICATE_VERSION when name@version belongs to a bundle other than `id`. */
  assertVersionFree(name: string, version: number, id: string): void {
    const other = this.getBundleByVersion(name, version);
    if (other && other.id !== id) {
      throw hubError('HUB_ERR_DUPLICATE_VERSION', `${name}@${version} is bundle ${other.id.slice(0, 16)}…, this upload is ${id.slice(0, 16)}…`, { bundleId: other.id });
    }
  }

  getBundle(id: string): BundleRecord | undefined {
    const hit = this.bundleCache.get(id);
    if (hit) return hit;
    const row = this.guard('cannot read bundles', () => this.db.prepare('SELECT * FROM bundles WHERE id = ?').get(id) as BundleRow | undefined);
    return row ? this.bundleFromRow(row) : undefined;
  }

  getBundleByVersion(name: string, version: number): BundleRecord | undefined {
    const row = this.guard('cannot read bundles', () => this.db.prepare('SELECT * FROM bundles WHERE name = ? AND version = ?').get(name, version) as BundleRow | undefined);
    return row ? this.bundleFromRow(row) : undefined;
  }

  listBundles(): BundleRecord[] {
    const rows = this.guard('cannot read bundles', () => this.db.prepare('SELECT * FROM bundles ORDER BY name, version').all() as BundleRow[]);
    return rows.map((r) => this.bundleFromRow(r));
  }

  private bundleFromRow(r: BundleRow): BundleRecord {
    const hit = this.bundleCache.get(r.id);
    if (hit) return hit;
    const envelope = parseEnvelope(JSON.parse(r.envelope));
    const manifest = parseManifest(JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')));
    const rec: BundleRecord = {
      id: r.id, name: r.name, version: r.version, envelope, manifest,
      compressedLength: r.compressed_length, rawLength: r.raw_length, chunkSize: r.chunk_size, chunkCount: r.chunk_count, createdAt: r.created_at,
    };
    this.bundleCache.set(r.id, rec);
    return rec;
  }

  // ---- devices -----------------------------------------------------------

  /*
   * Device reports come in bursts (every agent reports each install phase), and
   * each autocommit would fsync the WAL on the event loop the embedded broker
   * shares: at 200 agents that alone stalled a rollout for seconds. Reports are
   * therefore queued and written in ONE transaction per event-loop turn; every
   * read of what they write flushes first, so callers still read their writes.
   * A report lost to a power cut is sent again (state is retained, devices
   * re-report on connect); counters and assignments are never queued.
   */
  private readonly pendingReports: (() => void)[] = [];
  private reportFlush: NodeJS.Immediate | undefined;
  /** Reports dropped because even their single-row retry failed (disk full, damaged file). */
  reportFailures = 0;
  private stmtCache = new Map<string, Database.Statement>();

  private stmt(sql: string): Database.Statement {
    let st = this.stmtCache.get(sql);
    if (!st) { st = this.db.prepare(sql); this.stmtCache.set(sql, st); }
    return st;
  }

  private queueReport(write: () => void): void {
    this.pendingReports.push(write);
    this.reportFlush ??= setImmediate(() => this.flushReports());
  }

  /** Write queued device reports now, in one transaction (reads of devices, events and counters call this). */
  flushReports(): void {
    if (this.reportFlush) clearImmediate(this.reportFlush);
    this.reportFlush = undefined;
    if (this.pendingReports.length === 0 || !this.db.open) return;
    const batch = this.pendingReports.splice(0);
    try {
      this.db.transaction(() => { for (const w of batch) w(); })();
    } catch {
      // One bad row must not lose the others: retry each on its own, count what still fails.
      for (const w of batch) { try { w(); } catch { this.reportFailures++; } }
    }
  }

  /** Upsert the registry from a (validated) state report. */
  recordState(report: StateReport, now: number): void {
    const row = { id: report.deviceId, state: JSON.stringify(report), now, active: report.active?.bundleId ?? null, phase: report.phase, err: report.lastError?.code ?? null };
    this.queueReport(() => this.stmt(`INSERT INTO devices (id, state, first_seen, last_seen, active_bundle_id, phase, last_error_code)
        VALUES (@id, @state, @now, @now, @active, @phase, @err)
        ON CONFLICT (id) DO UPDATE SET state = @state, last_seen = @now, active_bundle_id = @active, phase = @phase, last_error_code = @err`).run(row));
  }

  getDevice(id: string): DeviceRecord | undefined {
    this.flushReports();
    const row = this.guard('cannot read devices', () => this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as DeviceRow | undefined);
    return row ? deviceFromRow(row) : undefined;
  }

  /**
   * The seq of the device's last stored state report, without writing the queued ones first: the replay
   * guard (hub/report-replay.ts) asks once per device, before that device's first report is queued, so
   * nothing of that device can be waiting. Flushing here cost one commit (an fsync) per device when a
   * whole fleet reconnected after a restart.
   */
  storedStateSeq(deviceId: string): number | undefined {
    const seq = this.guard('cannot read devices', () => this.stmt("SELECT json_extract(state, '$.seq') FROM devices WHERE id = ?").pluck().get(deviceId)) as number | null | undefined;
    return seq ?? undefined;
  }

  /** How many devices are in the registry: GET /v1/health asks this often, so it counts rows instead of reading every state. */
  countDevices(): number {
    this.flushReports();
    return this.guard('cannot read devices', () => this.db.prepare('SELECT COUNT(*) FROM devices').pluck().get() as number);
  }

  listDevices(): DeviceRecord[] {
    this.flushReports();
    const rows = this.guard('cannot read devices', () => this.db.prepare('SELECT * FROM devices ORDER BY id').all() as DeviceRow[]);
    return rows.map(deviceFromRow);
  }

  /** Store a device event; `claim` marks one that names a bundle never assigned to the device (hub/events). */
  recordEvent(e: DeviceEvent, now: number, claim = false): void {
    this.queueReport(() => this.stmt(`INSERT INTO events (device_id, seq, at, kind, code, bundle_id, counter, detail, received_at, claim)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(e.deviceId, e.seq, e.at, e.kind, e.code ?? null, e.bundleId ?? null, e.counter ?? null, e.detail ?? null, now, claim ? 1 : 0));
  }

  /** Was `bundleId` ever assigned to the device (under `counter`, when given)? */
  wasAssigned(deviceId: string, bundleId: string, counter?: number): boolean {
    const row = this.guard('cannot read assignments', () => this.stmt('SELECT first_counter AS lo, last_counter AS hi FROM assigned_bundles WHERE device_id = ? AND bundle_id = ?')
      .get(deviceId, bundleId) as { lo: number; hi: number } | undefined);
    return row !== undefined && (counter === undefined || (counter >= row.lo && counter <= row.hi));
  }

  listEvents(deviceId: string, limit = 100): DeviceEvent[] {
    this.flushReports();
    const rows = this.guard('cannot read events', () => this.db.prepare('SELECT * FROM events WHERE device_id = ? ORDER BY id DESC LIMIT ?').all(deviceId, limit) as Record<string, unknown>[]);
    return rows.map((r) => {
      const e: DeviceEvent = { v: 1, deviceId: r.device_id as string, seq: r.seq as number, at: r.at as number, kind: r.kind as DeviceEvent['kind'] };
      if (r.code !== null) e.code = r.code as string;
      if (r.bundle_id !== null) e.bundleId = r.bundle_id as string;
      if (r.counter !== null) e.counter = r.counter as number;
      if (r.detail !== null) e.detail = r.detail as string;
      return e;
    });
  }

  // ---- counters and assignments -------------------------------------------

  lastCounter(deviceId: string): number {
    this.flushReports();
    const row = this.guard('cannot read counters', () => this.db.prepare('SELECT last_counter FROM device_counters WHERE device_id = ?').get(deviceId) as { last_counter: number } | undefined);
    return row?.last_counter ?? 0;
  }

  /**
   * A device reports the counter it has accepted; never issue at or below it,
   * even if this hub's database was restored from an older backup.
   */
  noteReportedCounter(deviceId: string, counter: number): void {
    this.queueReport(() => this.stmt(`INSERT INTO device_counters (device_id, last_counter) VALUES (?, ?)
        ON CONFLICT (device_id) DO UPDATE SET last_counter = max(last_counter, excluded.last_counter)`).run(deviceId, counter));
  }

  /**
   * Allocate the next counter for each device, sign, and store the assignment,
   * all in one transaction: either every target gets a new, strictly larger
   * counter and its assignment, or nothing changes.
   */
  issueAssignments(items: readonly { deviceId: string; bundleId: string; rolloutId: string | null; ring: string | null }[], sign: SignAssignment): AssignmentRecord[] {
    // Counters devices reported must be in before new ones are allocated above them.
    this.flushReports();
    const bump = this.db.prepare(`INSERT INTO device_counters (device_id, last_counter) VALUES (?, 1)
      ON CONFLICT (device_id) DO UPDATE SET last_counter = last_counter + 1 RETURNING last_counter`);
    const put = this.db.prepare(`INSERT INTO assignments (device_id, counter, bundle_id, envelope, rollout_id, ring, issued_at, expires_at)
      VALUES (@deviceId, @counter, @bundleId, @envelope, @rolloutId, @ring, @issuedAt, @expiresAt)
      ON CONFLICT (device_id) DO UPDATE SET counter = @counter, bundle_id = @bundleId, envelope = @envelope, rollout_id = @rolloutId,
        ring = @ring, issued_at = @issuedAt, expires_at = @expiresAt`);
    const history = this.db.prepare(`INSERT INTO assigned_bundles (device_id, bundle_id, first_counter, last_counter) VALUES (?, ?, ?, ?)
      ON CONFLICT (device_id, bundle_id) DO UPDATE SET last_counter = max(last_counter, excluded.last_counter)`);
    const run = this.db.transaction(() => items.map((it) => {
      const { last_counter: counter } = bump.get(it.deviceId) as { last_counter: number };
      const signed = sign(it.deviceId, counter);
      const rec: AssignmentRecord = { deviceId: it.deviceId, counter, bundleId: it.bundleId, envelope: signed.envelope, rolloutId: it.rolloutId, ring: it.ring, issuedAt: signed.issuedAt, expiresAt: signed.expiresAt };
      put.run({ ...rec, envelope: JSON.stringify(rec.envelope) });
      history.run(it.deviceId, it.bundleId, counter, counter);
      return rec;
    }));
    return this.guard('cannot store assignments', () => run());
  }

  getAssignment(deviceId: string): AssignmentRecord | undefined {
    const row = this.guard('cannot read assignments', () => this.db.prepare('SELECT * FROM assignments WHERE device_id = ?').get(deviceId) as AssignmentRow | undefined);
    return row ? assignmentFromRow(row) : undefined;
  }

  listAssignments(): AssignmentRecord[] {
    const rows = this.guard('cannot read assignments', () => this.db.prepare('SELECT * FROM assignments ORDER BY device_id').all() as AssignmentRow[]);
    return rows.map(assignmentFromRow);
  }

  /** Assignments at or past half their lifetime at `now` (the refresher re-signs these). */
  assignmentsDueForRefresh(now: number): AssignmentRecord[] {
    const rows = this.guard('cannot read assignments', () => this.db.prepare(
      'SELECT * FROM assignments WHERE issued_at + (expires_at - issued_at) / 2 <= ? ORDER BY device_id').all(now) as AssignmentRow[]);
    return rows.map(assignmentFromRow);
  }

  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if ((e as { name?: string }).name === 'FleetcastError') throw e;
      throw storeError(what, e);
    }
  }
}
