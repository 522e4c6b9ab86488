/**
 * Applying the hub's one migration chain (hub/store-schema.ts) to either engine, at start. Step i takes
 * the database from schema version i to i+1, inside one transaction with its version bump. SQLite keeps
 * the version in user_version (as hub.db always has); PostgreSQL in a one-row schema_version table,
 * under an advisory lock so that hubs starting together against one database migrate it once.
 *
 * A database whose version is beyond the chain was migrated by a newer hub: this hub refuses to start
 * (HUB_ERR_STORE_SCHEMA) rather than read or write tables it does not know.
 */
import { hubError } from '../errors.js';
import { engineOf, type Db } from './db.js';

/**
 * Portable SQL (SQLite's dialect, which hub/db/pg-sql.ts carries over), one text per engine, or a function
 * of the database for a step that depends on what it finds (it runs inside the step's transaction).
 */
export type Migration = string | { sqlite: string; postgres: string } | ((db: Db) => void);

// Any fixed number: the advisory lock that serialises migrations of one PostgreSQL database.
const MIGRATION_LOCK = 0x666c6374;

function apply(db: Db, m: Migration, engine: 'sqlite' | 'postgres'): void {
  if (typeof m === 'function') m(db);
  else db.exec(typeof m === 'string' ? m : m[engine]);
}

function tooNew(at: number, known: number): Error {
  return hubError('HUB_ERR_STORE_SCHEMA', `the database has schema version ${at}, this hub knows versions up to ${known}; it needs a hub that knows schema version ${at} or later`, { schemaVersion: at, known });
}

/** The database's schema version (0 for an empty one). */
export function schemaVersion(db: Db): number {
  if (engineOf(db) === 'sqlite') return db.pragma('user_version', { simple: true }) as number;
  const exists = db.prepare("SELECT to_regclass('schema_version') IS NOT NULL AS e").pluck().get() as boolean;
  if (!exists) return 0;
  return (db.prepare('SELECT version FROM schema_version').pluck().get() as number | undefined) ?? 0;
}

export function migrate(db: Db, chain: readonly Migration[]): { from: number; to: number } {
  const engine = engineOf(db);
  if (engine === 'sqlite') {
    const at = schemaVersion(db);
    if (at > chain.length) throw tooNew(at, chain.length);
    for (let v = at; v < chain.length; v++) {
      db.transaction(() => { apply(db, chain[v], engine); db.pragma(`user_version = ${v + 1}`); })();
    }
    return { from: at, to: Math.max(at, chain.length) };
  }
  return db.transaction(() => {
    db.prepare('SELECT pg_advisory_xact_lock(?)').run(MIGRATION_LOCK);
    db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    let at = db.prepare('SELECT version FROM schema_version').pluck().get() as number | undefined;
    if (at === undefined) { db.prepare('INSERT INTO schema_version (version) VALUES (0)').run(); at = 0; }
    if (at > chain.length) throw tooNew(at, chain.length);
    for (let v = at; v < chain.length; v++) apply(db, chain[v], engine);
    db.prepare('UPDATE schema_version SET version = ?').run(Math.max(at, chain.length));
    return { from: at, to: Math.max(at, chain.length) };
  })();
}
