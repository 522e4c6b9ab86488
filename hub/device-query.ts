/**
 * The device registry as pages, filtered in SQL: the console's Fleet page and
 * `GET /v1/devices` must stay fast at 100,000 devices, so nothing here reads
 * every row into JavaScript. Pages are keyed by device id (`after` = the last
 * id of the previous page): an index seek, stable while devices report, unlike
 * OFFSET which rescans what it skips and shifts when rows are added.
 */
import { engineOf, type Db } from './db/db.js';
import { deviceFromRow, type DeviceRow } from './store-schema.js';
import type { DeviceRecord, HubStore } from './store.js';

export interface DeviceFilter {
  /** online: heard from within the window; offline: not. */
  state?: 'online' | 'offline';
  /** NAME@VERSION of the active model, or `none`. */
  version?: string;
  tag?: string;
  /** Ring of the current assignment (`none`: no ring). */
  ring?: string;
  /** Install phase of the last state report. */
  phase?: string;
  /** Part of the device id (case-sensitive substring). */
  q?: string;
}

export interface DevicePage { devices: DeviceRecord[]; total: number; next: string | null }

/** The WHERE clause and its parameters for a filter (shared by the page, its count and the summary). */
function where(db: Db, f: DeviceFilter, onlineSince: number): { sql: string; params: unknown[] } {
  const c: string[] = [];
  const p: unknown[] = [];
  if (f.state) { c.push(f.state === 'online' ? 'd.last_seen >= ?' : 'd.last_seen < ?'); p.push(onlineSince); }
  if (f.version !== undefined) {
    if (f.version === 'none') c.push("json_extract(d.state, '$.active') IS NULL");
    else {
      const at = f.version.lastIndexOf('@');
      c.push("json_extract(d.state, '$.active.name') = ? AND json_extract(d.state, '$.active.version') = ?");
      p.push(f.version.slice(0, at), at < 0 ? NaN : Number(f.version.slice(at + 1)));
    }
  }
  if (f.tag !== undefined) { c.push(TAG_MATCH[engineOf(db)]); p.push(f.tag); }
  if (f.ring !== undefined) {
    if (f.ring === 'none') c.push('a.ring IS NULL');
    else { c.push('a.ring = ?'); p.push(f.ring); }
  }
  if (f.phase !== undefined) { c.push('d.phase = ?'); p.push(f.phase); }
  // instr, not LIKE: an id may hold `_`, which LIKE would read as a wildcard.
  if (f.q !== undefined && f.q !== '') { c.push('instr(d.id, ?) > 0'); p.push(f.q); }
  return { sql: c.length ? `WHERE ${c.join(' AND ')}` : '', params: p };
}

/**
 * capabilities.tags is an array or one string (hub/rollouts/rings.ts tagsOf). SQLite's json_each walks
 * both; PostgreSQL has no json_each with a path, and jsonb containment says the same thing in one
 * operator: an array contains a string it holds, a string contains itself.
 */
const TAG_MATCH = {
  sqlite: "EXISTS (SELECT 1 FROM json_each(d.state, '$.capabilities.tags') t WHERE t.value = ?)",
  postgres: "(d.state::jsonb #> '{capabilities,tags}') @> to_jsonb(?::text)",
} as const;

const FROM = 'FROM devices d LEFT JOIN assignments a ON a.device_id = d.id';

/** One page of devices in id order after `after`, the number matching the filter, and the cursor of the next page. */
export function pageDevices(store: HubStore, f: DeviceFilter, o: { onlineSince: number; limit: number; after?: string }): DevicePage {
  const db = store.db;
  const w = where(db, f, o.onlineSince);
  const cursor = o.after !== undefined ? `${w.sql ? `${w.sql} AND` : 'WHERE'} d.id > ?` : w.sql;
  const params = o.after !== undefined ? [...w.params, o.after] : w.params;
  // One row more than asked tells whether there is a next page without a second query.
  const rows = db.prepare(`SELECT d.* ${FROM} ${cursor} ORDER BY d.id LIMIT ?`).all(...params, o.limit + 1) as DeviceRow[];
  const more = rows.length > o.limit;
  const page = (more ? rows.slice(0, o.limit) : rows).map(deviceFromRow);
  const total = db.prepare(`SELECT COUNT(*) ${FROM} ${w.sql}`).pluck().get(...w.params) as number;
  return { devices: page, total, next: more ? page[page.length - 1].id : null };
}

export interface FleetSummary {
  total: number;
  online: number;
  byVersion: Record<string, number>;
  byRing: Record<string, number>;
  byPhase: Record<string, number>;
}

function countBy(db: Db, expr: string, join: boolean): Record<string, number> {
  const rows = db.prepare(`SELECT ${expr} AS k, COUNT(*) AS n FROM devices d ${join ? 'LEFT JOIN assignments a ON a.device_id = d.id' : ''} GROUP BY k ORDER BY n DESC LIMIT 200`).all() as { k: string | null; n: number }[];
  return Object.fromEntries(rows.map((r) => [r.k ?? 'none', r.n]));
}

/** Devices by active version, ring, phase and online: the Fleet page's overview, counted in SQL. */
export function fleetSummary(store: HubStore, onlineSince: number): FleetSummary {
  const db = store.db;
  return {
    total: db.prepare('SELECT COUNT(*) FROM devices').pluck().get() as number,
    online: db.prepare('SELECT COUNT(*) FROM devices WHERE last_seen >= ?').pluck().get(onlineSince) as number,
    byVersion: countBy(db, "json_extract(state, '$.active.name') || '@' || json_extract(state, '$.active.version')", false),
    byRing: countBy(db, 'a.ring', true),
    byPhase: countBy(db, 'phase', false),
  };
}
