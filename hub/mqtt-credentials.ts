/**
 * MQTT credentials (issue #6): one per device (`fleetcast device enroll ID`)
 * and one for the hub itself, in the mqtt_credentials table (a step of the
 * store's migration chain, hub/store-schema.ts). Only a salted hash is stored; the
 * secret is shown once. Secrets are 32 random bytes, so a single SHA-256 is
 * enough (no dictionary to slow down, unlike human passwords) and checking
 * thousands of simulated devices connecting at once costs microseconds each.
 */
import { engineOf, type Db, type Stmt } from './db/db.js';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { DEVICE_ID_PATTERN } from '@fleetcast/protocol/topics.js';
import { hubError } from './errors.js';

export type MqttRole = 'device' | 'hub';
/** `salt` names the credential that was checked: re-enrolling issues a new one, so a session on the old one can be told apart. */
export interface MqttIdentity { username: string; role: MqttRole; salt?: Buffer }

/** The hub's own MQTT user name, reserved: no device may enroll under it (mosquitto_passwd refuses ':' in names). */
export const HUB_MQTT_USER = 'fleetcast-hub';

/**
 * Who to tell when a credential is issued or revoked through this process's
 * connection (another process's change shows as a new PRAGMA data_version).
 * Keyed by connection, so every MqttCredentials on the hub's store hears it.
 */
const listeners = new WeakMap<Db, Set<() => void>>();

interface CredentialRow { role: MqttRole; salt: Buffer; hash: Buffer }

/**
 * The credential rows last read, per connection. While a PostgreSQL store is unreachable
 * (HUB_ERR_STORE_UNAVAILABLE) the broker checks against these, so a fleet whose devices reconnect during
 * the outage is not locked out by it; nothing can be enrolled or revoked meanwhile either.
 */
const lastKnown = new WeakMap<Db, Map<string, CredentialRow>>();

function unavailable(e: unknown): boolean {
  return (e as { code?: string }).code === 'HUB_ERR_STORE_UNAVAILABLE';
}

function hash(salt: Buffer, secret: string): Buffer {
  return createHash('sha256').update(salt).update(secret, 'utf8').digest();
}

export class MqttCredentials {
  private readonly db: Db;
  private checkStmt: Stmt | undefined;

  /** Only a PostgreSQL store can be unreachable: on SQLite nothing is kept (the embedded default is unchanged). */
  private readonly known: Map<string, CredentialRow> | undefined;

  constructor(db: Db) {
    this.db = db;
    let known = lastKnown.get(db);
    if (!known && engineOf(db) === 'postgres') lastKnown.set(db, (known = new Map()));
    this.known = known;
  }

  /** Issue (or re-issue, replacing the old one) a device credential; returns the secret, which is not stored. */
  enrollDevice(deviceId: string, now = Date.now()): { username: string; password: string } {
    if (deviceId === HUB_MQTT_USER) throw hubError('HUB_ERR_BAD_REQUEST', `${HUB_MQTT_USER} is the hub's own MQTT user name; choose another device id`);
    if (!DEVICE_ID_PATTERN.test(deviceId)) throw hubError('HUB_ERR_BAD_REQUEST', `device id ${JSON.stringify(deviceId)} must match ${DEVICE_ID_PATTERN.source}`);
    return { username: deviceId, password: this.issue(deviceId, 'device', now) };
  }

  /** Whether this device holds an active (not revoked) credential: enrolled, whether or not it has connected yet. */
  isEnrolled(deviceId: string): boolean {
    return this.db.prepare("SELECT 1 FROM mqtt_credentials WHERE username = ? AND role = 'device' AND revoked_at IS NULL").get(deviceId) !== undefined;
  }

  /** A fresh hub credential, replacing the previous one (the hub makes one at every start). */
  issueHub(now = Date.now()): { username: string; password: string } {
    return { username: HUB_MQTT_USER, password: this.issue(HUB_MQTT_USER, 'hub', now) };
  }

  revoke(username: string, now = Date.now()): boolean {
    const done = this.db.prepare('UPDATE mqtt_credentials SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL').run(now, username).changes > 0;
    this.known?.delete(username);
    if (done) this.changed();
    return done;
  }

  /** Call `fn` after each issue or revoke made on this connection; returns the unsubscribe. */
  onChange(fn: () => void): () => void {
    let set = listeners.get(this.db);
    if (!set) listeners.set(this.db, (set = new Set()));
    set.add(fn);
    return () => { set.delete(fn); };
  }

  /** Changes when another connection (the `fleetcast device` CLI) commits to the database. */
  dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  /** True while the credential this identity was checked with is still the user's, unrevoked. */
  isCurrent(id: MqttIdentity): boolean {
    const row = this.row(id.username);
    return row !== undefined && id.salt !== undefined && row.salt.equals(id.salt);
  }

  /** The user's unrevoked credential: from the store, or the last one read while the store is unreachable. */
  private row(username: string): CredentialRow | undefined {
    // Prepared once: the broker asks on every CONNECT, publish and subscribe.
    this.checkStmt ??= this.db.prepare('SELECT role, salt, hash FROM mqtt_credentials WHERE username = ? AND revoked_at IS NULL');
    try {
      const row = this.checkStmt.get(username) as CredentialRow | undefined;
      if (row) this.known?.set(username, row); else this.known?.delete(username);
      return row;
    } catch (e) {
      const last = this.known?.get(username);
      if (unavailable(e) && last) return last;
      throw e;
    }
  }

  /** Every unrevoked user name with its credential's salt. */
  currentSalts(): Map<string, Buffer> {
    const rows = this.db.prepare('SELECT username, salt FROM mqtt_credentials WHERE revoked_at IS NULL').all() as { username: string; salt: Buffer }[];
    return new Map(rows.map((r) => [r.username, r.salt]));
  }

  private changed(): void {
    for (const fn of listeners.get(this.db) ?? []) fn();
  }

  /** The identity a user name and secret prove, or undefined. */
  check(username: string | undefined, password: Buffer | string | undefined): MqttIdentity | undefined {
    if (!username || password === undefined) return undefined;
    const row = this.row(username);
    if (!row) return undefined;
    const got = hash(row.salt, Buffer.isBuffer(password) ? password.toString('utf8') : password);
    return timingSafeEqual(got, row.hash) ? { username, role: row.role, salt: row.salt } : undefined;
  }

  private issue(username: string, role: MqttRole, now: number): string {
    const secret = randomBytes(32).toString('base64url');
    const salt = randomBytes(16);
    this.db.prepare(`INSERT INTO mqtt_credentials (username, role, salt, hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, NULL)
      ON CONFLICT(username) DO UPDATE SET role = excluded.role, salt = excluded.salt, hash = excluded.hash, created_at = excluded.created_at, revoked_at = NULL`)
      .run(username, role, salt, hash(salt, secret), now);
    this.known?.delete(username);
    this.changed();
    return secret;
  }
}
