/**
 * The hub's schema, one migration chain for both engines (hub/db/migrate.ts):
 * migration i takes a database from version i to i+1, so a data folder or
 * database written by an older hub opens in a newer one. A step is SQLite's
 * dialect, which hub/db/pg-sql.ts carries over to PostgreSQL, or one text per
 * engine. Never edit a released migration; append one.
 */
import type { Envelope } from '@fleetcast/protocol/envelope.js';
import type { StateReport } from '@fleetcast/protocol/messages.js';
import type { Migration } from './db/migrate.js';
import { LEADER_TABLE_LOCK, LEADER_TABLE_SQL } from './cluster/leader-table.js';
import type { AssignmentRecord, DeviceRecord } from './store.js';

export const MIGRATIONS: readonly Migration[] = [
  `CREATE TABLE bundles (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     version INTEGER NOT NULL,
     envelope TEXT NOT NULL,
     compressed_length INTEGER NOT NULL,
     raw_length INTEGER NOT NULL,
     chunk_size INTEGER NOT NULL,
     chunk_count INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     UNIQUE (name, version)
   );
   CREATE TABLE devices (
     id TEXT PRIMARY KEY,
     state TEXT NOT NULL,
     first_seen INTEGER NOT NULL,
     last_seen INTEGER NOT NULL,
     active_bundle_id TEXT,
     phase TEXT NOT NULL,
     last_error_code TEXT
   );
   CREATE TABLE device_counters (
     device_id TEXT PRIMARY KEY,
     last_counter INTEGER NOT NULL
   );
   CREATE TABLE assignments (
     device_id TEXT PRIMARY KEY,
     counter INTEGER NOT NULL,
     bundle_id TEXT NOT NULL REFERENCES bundles(id),
     envelope TEXT NOT NULL,
     rollout_id TEXT,
     ring TEXT,
     issued_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   );
   CREATE TABLE events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     device_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     at INTEGER NOT NULL,
     kind TEXT NOT NULL,
     code TEXT,
     bundle_id TEXT,
     counter INTEGER,
     detail TEXT,
     received_at INTEGER NOT NULL
   );
   CREATE INDEX events_by_device ON events (device_id, id);`,
  // Device events are checked against what the device was assigned: an event naming a bundle never
  // assigned to it is kept as the device's claim (claim = 1), never as an install. Consistent installs
  // are appended to the transparency log in batches; log_index is the leaf that holds one.
  // assigned_bundles remembers every bundle ever assigned to a device (the assignments table keeps
  // only the current one), with the range of counters it was assigned under.
  `ALTER TABLE events ADD COLUMN claim INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE events ADD COLUMN log_index INTEGER;
   CREATE INDEX events_unlogged_installs ON events (id) WHERE kind = 'installed' AND claim = 0 AND log_index IS NULL;
   CREATE INDEX events_by_time ON events (received_at);
   CREATE TABLE assigned_bundles (
     device_id TEXT NOT NULL,
     bundle_id TEXT NOT NULL,
     first_counter INTEGER NOT NULL,
     last_counter INTEGER NOT NULL,
     PRIMARY KEY (device_id, bundle_id)
   ) WITHOUT ROWID;
   INSERT INTO assigned_bundles (device_id, bundle_id, first_counter, last_counter)
     SELECT device_id, bundle_id, counter, counter FROM assignments;
   -- Installs reported before this version were never checked: they stay device claims until re-reported.
   UPDATE events SET claim = 1 WHERE bundle_id IS NOT NULL;`,
  // Bundle bytes: files in the data folder on SQLite (hub/blobs/blob-files.ts); rows on PostgreSQL, one per
  // manifest chunk, so that every hub sharing the database serves every bundle (hub/blobs/blob-rows.ts).
  {
    sqlite: '-- bundle bytes are files in dataDir/blobs',
    postgres: `CREATE TABLE bundle_chunks (bundle_id TEXT NOT NULL, idx BIGINT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (bundle_id, idx));
      CREATE TABLE bundle_blobs (bundle_id TEXT PRIMARY KEY, length BIGINT NOT NULL, chunk_size BIGINT NOT NULL);`,
  },
  // The leader lease of a cluster (hub/cluster/leader.ts), so schema_version describes every table a cluster needs.
  // IF NOT EXISTS under the lease's own lock: a lease that started before this migration ran has created it already.
  {
    sqlite: '-- a hub alone on SQLite has no leader lease',
    postgres: `SELECT pg_advisory_xact_lock(${LEADER_TABLE_LOCK});
      ${LEADER_TABLE_SQL};`,
  },
];

export interface BundleRow { id: string; name: string; version: number; envelope: string; compressed_length: number; raw_length: number; chunk_size: number; chunk_count: number; created_at: number }
export interface DeviceRow { id: string; state: string; first_seen: number; last_seen: number; active_bundle_id: string | null; phase: string; last_error_code: string | null }
export interface AssignmentRow { device_id: string; counter: number; bundle_id: string; envelope: string; rollout_id: string | null; ring: string | null; issued_at: number; expires_at: number }

export function deviceFromRow(r: DeviceRow): DeviceRecord {
  return { id: r.id, state: JSON.parse(r.state) as StateReport, firstSeen: r.first_seen, lastSeen: r.last_seen, activeBundleId: r.active_bundle_id, phase: r.phase, lastErrorCode: r.last_error_code };
}

export function assignmentFromRow(r: AssignmentRow): AssignmentRecord {
  return { deviceId: r.device_id, counter: r.counter, bundleId: r.bundle_id, envelope: JSON.parse(r.envelope) as Envelope, rolloutId: r.rollout_id, ring: r.ring, issuedAt: r.issued_at, expiresAt: r.expires_at };
}
