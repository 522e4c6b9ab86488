/**
 * The hub's durable state: by default one SQLite file (`dataDir/hub.db`, WAL), or
 * a PostgreSQL database (`--store postgres://…`, hub/db/pg-db.ts) that several
 * hubs share; and one blob per bundle (`dataDir/blobs/<bundleId>.zst`, the
 * compressed payload exactly as the manifest hashes it). Schema changes are one
 * migration chain for both engines (hub/db/migrate.ts), so an old data folder or
 * database opens in a new hub.
 *
 * Counters live here because they must survive restarts: an agent refuses an
 * assignment whose counter it has passed (DESIGN.md "Trust"), so a hub that
 * forgot its counters would lock its fleet out.
 */
import { openSync, closeSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Envelope } from '@fleetcast/protocol/envelope.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import type { StateReport } from '@fleetcast/protocol/messages.js';
import { makePrivateDir, PRIVATE_FILE_MODE } from '@fleetcast/signing/private-files.js';
import { isFleetcastError } from '@fleetcast/protocol/errors.js';
import type { BlobStore, ChunkReader } from './blobs/blob-store.js';
import { FileBlobStore } from './blobs/blob-files.js';
import { RowBlobStore } from './blobs/blob-rows.js';
import { engineOf, type Db } from './db/db.js';
import { openPostgres, openSqlite } from './db/open-migrated.js';
import { redactUrl } from './db/pg-db.js';
import { AssignmentTable } from './store/assignment-table.js';
import { BundleTable } from './store/bundle-table.js';
import { DeviceTable } from './store/device-table.js';
import { ReportQueue } from './store/report-queue.js';
import { storeError } from './store/store-table.js';
import type { Fence } from './cluster/fence.js';

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

/**
 * The facade over one module per area (hub/store/: bundles, devices and events, counters and
 * assignments; hub/blobs/: bundle bytes; feature stores keep their own modules on `db`), so the
 * hub's call sites stay as they were.
 */
export class HubStore {
  readonly dir: string;
  readonly blobDir: string;
  readonly tmpDir: string;
  readonly #db: Db;
  private readonly reports: ReportQueue;

  /** Bundle bytes: files in the data folder, or rows of the PostgreSQL store that every hub can serve. */
  readonly blobs: BlobStore;
  private readonly files: FileBlobStore;

  readonly insertBundle: BundleTable['insertBundle'];
  readonly assertVersionFree: BundleTable['assertVersionFree'];
  readonly getBundle: BundleTable['getBundle'];
  readonly getBundleByVersion: BundleTable['getBundleByVersion'];
  readonly listBundles: BundleTable['listBundles'];
  readonly recordState: DeviceTable['recordState'];
  readonly getDevice: DeviceTable['getDevice'];
  readonly storedStateSeq: DeviceTable['storedStateSeq'];
  readonly storedEventSeq: DeviceTable['storedEventSeq'];
  readonly countDevices: DeviceTable['countDevices'];
  readonly listDevices: DeviceTable['listDevices'];
  readonly recordEvent: DeviceTable['recordEvent'];
  readonly listEvents: DeviceTable['listEvents'];
  readonly wasAssigned: AssignmentTable['wasAssigned'];
  readonly lastCounter: AssignmentTable['lastCounter'];
  readonly noteReportedCounter: AssignmentTable['noteReportedCounter'];
  readonly issueAssignments: AssignmentTable['issueAssignments'];
  readonly getAssignment: AssignmentTable['getAssignment'];
  readonly listAssignments: AssignmentTable['listAssignments'];
  readonly assignmentsDueForRefresh: AssignmentTable['assignmentsDueForRefresh'];

  private constructor(dir: string, db: Db) {
    this.dir = dir;
    this.#db = db;
    this.blobDir = join(dir, 'blobs');
    this.tmpDir = join(dir, 'tmp');
    this.files = new FileBlobStore(this.blobDir, this.tmpDir);
    this.blobs = engineOf(db) === 'postgres' ? new RowBlobStore(db) : this.files;
    this.reports = new ReportQueue(db);
    const b = new BundleTable(db, this.reports);
    const d = new DeviceTable(db, this.reports);
    const a = new AssignmentTable(db, this.reports);
    this.assignmentTable = a;
    this.insertBundle = b.insertBundle.bind(b);
    this.assertVersionFree = b.assertVersionFree.bind(b);
    this.getBundle = b.getBundle.bind(b);
    this.getBundleByVersion = b.getBundleByVersion.bind(b);
    this.listBundles = b.listBundles.bind(b);
    this.recordState = d.recordState.bind(d);
    this.getDevice = d.getDevice.bind(d);
    this.storedStateSeq = d.storedStateSeq.bind(d);
    this.storedEventSeq = d.storedEventSeq.bind(d);
    this.countDevices = d.countDevices.bind(d);
    this.listDevices = d.listDevices.bind(d);
    this.recordEvent = d.recordEvent.bind(d);
    this.listEvents = d.listEvents.bind(d);
    this.wasAssigned = a.wasAssigned.bind(a);
    this.lastCounter = a.lastCounter.bind(a);
    this.noteReportedCounter = a.noteReportedCounter.bind(a);
    this.issueAssignments = a.issueAssignments.bind(a);
    this.getAssignment = a.getAssignment.bind(a);
    this.listAssignments = a.listAssignments.bind(a);
    this.assignmentsDueForRefresh = a.assignmentsDueForRefresh.bind(a);
  }

  private readonly assignmentTable: AssignmentTable;

  /**
   * Set by a hub of a cluster: the leadership check that every single-writer write makes first inside its
   * transaction (here: assignment counters; the log and the rollout store take it from here) (hub/cluster/fence.ts).
   */
  get fence(): Fence | undefined { return this.assignmentTable.fence; }
  set fence(f: Fence | undefined) { this.assignmentTable.fence = f; }

  /** Reports dropped because even their single-row retry failed (see hub/store/report-queue.ts). */
  get reportFailures(): number { return this.reports.failures; }

  /** Device reports queued for the next write (see hub/store/report-queue.ts). */
  get queuedReports(): number { return this.reports.size; }

  /** Write queued device reports now, in one transaction (reads of devices, events and counters call this). */
  flushReports(): void { this.reports.flush(); }

  /**
   * Open the store: the SQLite file in `dataDir`, or the PostgreSQL database at `o.url` (postgres://…);
   * either way `dataDir` holds the blobs and the bootstrap token. Unreachable PostgreSQL →
   * HUB_ERR_STORE_UNAVAILABLE; a schema newer than this hub's → HUB_ERR_STORE_SCHEMA.
   */
  static open(dataDir: string, o: { url?: string } = {}): HubStore {
    let db: Db | undefined;
    const where = o.url ? `PostgreSQL at ${redactUrl(o.url)}` : join(dataDir, 'hub.db');
    try {
      // Folders 0700, files 0600 (signing/private-files.ts): bundles before release and device records are not for other users.
      makePrivateDir(dataDir);
      makePrivateDir(join(dataDir, 'blobs'));
      // Uploads in progress when a hub died are garbage; blobs are only ever renamed into place.
      rmSync(join(dataDir, 'tmp'), { recursive: true, force: true });
      makePrivateDir(join(dataDir, 'tmp'));
      if (o.url) {
        db = openPostgres(o.url);
      } else {
        // SQLite would create the file 0644; it gives its -wal and -shm files the database file's mode, so create it 0600 first.
        closeSync(openSync(join(dataDir, 'hub.db'), 'a', PRIVATE_FILE_MODE));
        db = openSqlite(join(dataDir, 'hub.db'));
      }
    } catch (e) {
      try { db?.close(); } catch { /* reporting the first error */ }
      if (isFleetcastError(e)) throw e;
      throw storeError(`cannot open ${where}`, e);
    }
    return new HubStore(dataDir, db);
  }

  close(): void {
    this.flushReports();
    if (this.#db.open) this.#db.close();
  }

  /**
   * The open database (SQLite or PostgreSQL behind one Db), for the feature stores (tokens, credentials,
   * rollouts, telemetry, the log, debug, grants): their tables are steps of the same migration chain.
   */
  get db(): Db {
    // Queued device reports are written first, so direct readers see them.
    this.flushReports();
    return this.#db;
  }

  // ---- bundle bytes ------------------------------------------------------

  /** The blob file of a bundle (the SQLite store's; on PostgreSQL the bytes are rows, see `blobs`). */
  blobPath(bundleId: string): string {
    return this.files.path(bundleId);
  }

  /** A fresh path under dataDir/tmp (same filesystem as blobs/, so rename is atomic). */
  tempPath(prefix: string): string {
    return this.files.tempPath(prefix);
  }

  /**
   * Copy `length` bytes at `offset` of `src` to the bundle's blob, whole or not at all (a crash leaves
   * the old state or the new one, never a torn blob): a file on SQLite, rows on PostgreSQL (hub/blobs/).
   */
  async putBlob(bundleId: string, src: string, offset: number, length: number, chunkSize = 1 << 20): Promise<void> {
    try {
      await this.blobs.put(bundleId, src, offset, length, chunkSize);
    } catch (e) {
      if (isFleetcastError(e)) throw e;
      throw storeError(`cannot write blob for bundle ${bundleId}`, e);
    }
  }

  hasBlob(bundleId: string): boolean {
    try { return this.blobs.has(bundleId); } catch (e) { if (isFleetcastError(e)) throw e; throw storeError('cannot read blobs', e); }
  }

  /** Where the chunk server reads a bundle's bytes from. */
  chunkSource(bundleId: string): { manifest: Manifest; blobPath: string } | { manifest: Manifest; open(): Promise<ChunkReader> } | undefined {
    const b = this.getBundle(bundleId);
    if (!b) return undefined;
    return this.blobs === this.files ? { manifest: b.manifest, blobPath: this.blobPath(bundleId) } : { manifest: b.manifest, open: () => this.blobs.open(bundleId) };
  }
}
