/**
 * The hub's schema, one migration chain for both engines (hub/db/migrate.ts):
 * migration i takes a database from version i to i+1, so a data folder or
 * database written by an older hub opens in a newer one. A step is SQLite's
 * dialect, which hub/db/pg-sql.ts carries over to PostgreSQL, one text per
 * engine, or a function of the database. Never edit a released migration;
 * append one.
 *
 * Every table and index of the hub is created here and nowhere else (a test
 * checks that no other file under hub/ holds CREATE TABLE or CREATE INDEX): the
 * modules that use a table only read and write it, and a test or bench that
 * builds one on a bare database opens it through hub/db/open-migrated.ts.
 */
import type { Envelope } from '@fleetcast/protocol/envelope.js';
import type { StateReport } from '@fleetcast/protocol/messages.js';
import type { Migration } from './db/migrate.js';
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
  // The leader lease of a cluster (hub/cluster/leader.ts): one row (id = 1), the lease, its fencing epoch, holder,
  // advertised URL and expiry in the database's clock. IF NOT EXISTS under a lock of its own: hubs of schema
  // version 4 also created it from the lease at start, which may have run before this step.
  {
    sqlite: '-- a hub alone on SQLite has no leader lease',
    postgres: `SELECT pg_advisory_xact_lock(7046011);
      CREATE TABLE IF NOT EXISTS hub_leader (
  id smallint PRIMARY KEY CHECK (id = 1),
  epoch bigint NOT NULL,
  holder text NOT NULL,
  url text,
  expires_at timestamptz NOT NULL
);`,
  },
  // Every feature table joins the chain; until version 5 each module created its own at start, outside it. IF NOT
  // EXISTS because a data folder or database written at version 4 has them already, made on the fly by those
  // modules with this same DDL (test/fixtures/hub-db-v4). An api_tokens made before tokens could expire lacks
  // expires_at: the step adds it (the token store's own migration until now).
  (db) => {
    db.exec(`
      -- API bearer tokens (hub/auth/tokens.ts): only the sha256 of each is kept.
      CREATE TABLE IF NOT EXISTS api_tokens (
        id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, role TEXT NOT NULL, label TEXT,
        created_at INTEGER NOT NULL, created_by TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, expires_at INTEGER
      );
      -- MQTT credentials of devices and of the hub (hub/mqtt-credentials.ts): a salted hash per user.
      CREATE TABLE IF NOT EXISTS mqtt_credentials (
        username TEXT PRIMARY KEY, role TEXT NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER);
      -- Every bundle ever assigned to a device, ordered by seq (hub/transfer-grants.ts).
      CREATE TABLE IF NOT EXISTS bundle_grants (
        device_id TEXT NOT NULL, bundle_id TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (device_id, bundle_id)
      );
      -- Rollouts, their members and every decision (hub/rollouts/rollout-store.ts, decisions.ts).
      CREATE TABLE IF NOT EXISTS rollouts (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL, bundle_id TEXT NOT NULL, plan TEXT NOT NULL,
        state TEXT NOT NULL, ring INTEGER NOT NULL, ring_started_at INTEGER, gates_passed_at INTEGER, gates TEXT NOT NULL,
        created_at INTEGER NOT NULL, created_by TEXT NOT NULL, updated_at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS rollouts_by_name ON rollouts (name, state);
      CREATE TABLE IF NOT EXISTS rollout_devices (
        rollout_id TEXT NOT NULL REFERENCES rollouts(id), device_id TEXT NOT NULL, ring INTEGER NOT NULL, status TEXT NOT NULL,
        reason TEXT, prev_bundle_id TEXT, prev_p95 REAL, assigned_at INTEGER, counter INTEGER, done_at INTEGER,
        PRIMARY KEY (rollout_id, device_id)
      );
      CREATE INDEX IF NOT EXISTS rollout_devices_by_ring ON rollout_devices (rollout_id, ring, status);
      CREATE TABLE IF NOT EXISTS rollout_decisions (
        rollout_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        at INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (rollout_id, seq)
      );
      -- Telemetry cells at two resolutions, the last seq per device, drift events (hub/telemetry/telemetry-store.ts).
      CREATE TABLE IF NOT EXISTS telemetry_fine (bundle_id TEXT NOT NULL, ring TEXT NOT NULL, key TEXT NOT NULL, bucket INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (bundle_id, ring, key, bucket)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS telemetry_hour (bundle_id TEXT NOT NULL, ring TEXT NOT NULL, key TEXT NOT NULL, bucket INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (bundle_id, ring, key, bucket)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS telemetry_devices (device_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, dropped INTEGER NOT NULL, last_at INTEGER NOT NULL, bundle_id TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS drift_events (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, bundle_id TEXT NOT NULL, ring TEXT NOT NULL, feature TEXT NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL, threshold REAL NOT NULL, n INTEGER NOT NULL, state TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS drift_events_by_bundle ON drift_events (bundle_id, id);
      -- The transparency log: subtree hashes, the leaves' exact bytes, every signed checkpoint (hub/translog/).
      CREATE TABLE IF NOT EXISTS translog_hashes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS translog_leaves (idx INTEGER PRIMARY KEY, kind TEXT NOT NULL, ref TEXT, data BLOB NOT NULL, created_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS translog_leaves_ref ON translog_leaves (kind, ref);
      CREATE TABLE IF NOT EXISTS translog_checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL, created_at INTEGER NOT NULL);
      -- Debug sampling sessions and their audit trail (hub/debug/debug-store.ts), raw debug rows (hub/telemetry/debug-rows.ts).
      CREATE TABLE IF NOT EXISTS debug_sessions (
        device_id TEXT PRIMARY KEY, counter INTEGER NOT NULL, rows_per_window INTEGER, started_at INTEGER, until INTEGER, ended_at INTEGER,
        actor TEXT, envelope TEXT, expires_at INTEGER, published INTEGER NOT NULL DEFAULT 0, cleared INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE IF NOT EXISTS debug_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, device_id TEXT NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL,
        rows_per_window INTEGER, until INTEGER, counter INTEGER);
      CREATE INDEX IF NOT EXISTS debug_audit_device ON debug_audit (device_id, id);
      CREATE TABLE IF NOT EXISTS debug_rows (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, bundle_id TEXT NOT NULL,
        received_at INTEGER NOT NULL, window_from INTEGER, data TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS debug_rows_device ON debug_rows (device_id, id);
      CREATE INDEX IF NOT EXISTS debug_rows_age ON debug_rows (received_at);`);
    const tokenColumns = (db.prepare('PRAGMA table_info(api_tokens)').all() as { name: string }[]).map((c) => c.name);
    if (!tokenColumns.includes('expires_at')) db.exec('ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER');
  },
  // The seq of each device's stored state report as a column, so that the upsert writing a report applies only
  // when the report is newer (hub/store/device-table.ts): hubs sharing one database each keep their replay guard
  // in memory, and a late report handled by one of them must not overwrite a newer one that another stored.
  // PostgreSQL refuses the escape \u0000 in jsonb, and hubs before this step stored reports holding it: those
  // rows keep a NULL seq (the next report of the device sets it) instead of failing the whole upgrade.
  {
    sqlite: `ALTER TABLE devices ADD COLUMN state_seq INTEGER;
      UPDATE devices SET state_seq = json_extract(state, '$.seq');`,
    postgres: `ALTER TABLE devices ADD COLUMN state_seq BIGINT;
      UPDATE devices SET state_seq = (state::jsonb ->> 'seq')::bigint WHERE strpos(state, '\\u0000') = 0;`,
  },
  // A device event once per (device, seq), held by the database: each hub's replay guard knows only what it
  // saw, so an event replayed to another hub of a cluster was stored twice (and an install logged twice). An
  // agent's event seqs only grow, so two rows with one seq are one event: the upgrade keeps the row already in
  // the transparency log, else the first stored, and the insert skips a second (hub/store/device-table.ts).
  `DELETE FROM events WHERE id IN (
     SELECT id FROM (
       SELECT id, ROW_NUMBER() OVER (PARTITION BY device_id, seq ORDER BY CASE WHEN log_index IS NULL THEN 1 ELSE 0 END, id) AS nth
       FROM events) AS ranked
     WHERE nth > 1);
   CREATE UNIQUE INDEX events_device_seq ON events (device_id, seq);`,
];

export interface BundleRow { id: string; name: string; version: number; envelope: string; compressed_length: number; raw_length: number; chunk_size: number; chunk_count: number; created_at: number }
export interface DeviceRow { id: string; state: string; first_seen: number; last_seen: number; active_bundle_id: string | null; phase: string; last_error_code: string | null; state_seq: number | null }
export interface AssignmentRow { device_id: string; counter: number; bundle_id: string; envelope: string; rollout_id: string | null; ring: string | null; issued_at: number; expires_at: number }

export function deviceFromRow(r: DeviceRow): DeviceRecord {
  return { id: r.id, state: JSON.parse(r.state) as StateReport, firstSeen: r.first_seen, lastSeen: r.last_seen, activeBundleId: r.active_bundle_id, phase: r.phase, lastErrorCode: r.last_error_code };
}

export function assignmentFromRow(r: AssignmentRow): AssignmentRecord {
  return { deviceId: r.device_id, counter: r.counter, bundleId: r.bundle_id, envelope: JSON.parse(r.envelope) as Envelope, rolloutId: r.rollout_id, ring: r.ring, issuedAt: r.issued_at, expiresAt: r.expires_at };
}
