/**
 * Rollout state, in tables of the store's migration chain (hub/store-schema.ts): the
 * rollouts, each device's membership and progress, and (decisions.ts) every
 * decision. Everything the engine decides is written here before it acts, so
 * a hub killed at any point resumes from these rows.
 */
import type { Fence } from '../cluster/fence.js';
import type { Db } from '../db/db.js';
import type { RolloutPlan } from './spec.js';

export const ROLLOUT_STATES = ['running', 'paused', 'halted', 'rolling-back', 'rolled-back', 'aborted', 'completed', 'superseded'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];
/** States in which a rollout counts as "the" rollout of its model. */
export const ACTIVE_STATES: readonly RolloutState[] = ['running', 'paused'];

/**
 * waiting: in a ring not reached yet, or held back by rate/window; assigning:
 * written just before the assignment is issued (resolved on restart against the
 * assignments table); assigned: sent, no outcome yet; installed / failed /
 * timed-out: what the device reported (or did not, within the grace period);
 * skipped: incompatible; rolled-back: the hub assigned the previous bundle again.
 */
export const DEVICE_STATUSES = ['waiting', 'assigning', 'assigned', 'installed', 'failed', 'timed-out', 'skipped', 'rolled-back'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];

export interface RolloutRow {
  id: string;
  name: string;
  version: number;
  bundleId: string;
  plan: RolloutPlan;
  state: RolloutState;
  ring: number;
  ringStartedAt: number | null;
  /** When the current ring's gates last passed with auto-promotion off (awaiting a manual promote). */
  gatesPassedAt: number | null;
  /** Last gate evaluation per ring name. */
  gates: Record<string, unknown>;
  createdAt: number;
  createdBy: string;
  updatedAt: number;
}

export interface MemberRow {
  rolloutId: string;
  deviceId: string;
  ring: number;
  status: DeviceStatus;
  reason: string | null;
  prevBundleId: string | null;
  prevP95: number | null;
  assignedAt: number | null;
  counter: number | null;
  doneAt: number | null;
}

interface RawRollout { id: string; name: string; version: number; bundle_id: string; plan: string; state: string; ring: number; ring_started_at: number | null; gates_passed_at: number | null; gates: string; created_at: number; created_by: string; updated_at: number }
interface RawMember { rollout_id: string; device_id: string; ring: number; status: string; reason: string | null; prev_bundle_id: string | null; prev_p95: number | null; assigned_at: number | null; counter: number | null; done_at: number | null }

const toRollout = (r: RawRollout): RolloutRow => ({
  id: r.id, name: r.name, version: r.version, bundleId: r.bundle_id, plan: JSON.parse(r.plan) as RolloutPlan, state: r.state as RolloutState,
  ring: r.ring, ringStartedAt: r.ring_started_at, gatesPassedAt: r.gates_passed_at, gates: JSON.parse(r.gates) as Record<string, unknown>,
  createdAt: r.created_at, createdBy: r.created_by, updatedAt: r.updated_at,
});
const toMember = (r: RawMember): MemberRow => ({
  rolloutId: r.rollout_id, deviceId: r.device_id, ring: r.ring, status: r.status as DeviceStatus, reason: r.reason, prevBundleId: r.prev_bundle_id,
  prevP95: r.prev_p95, assignedAt: r.assigned_at, counter: r.counter, doneAt: r.done_at,
});

export class RolloutStore {
  readonly db: Db;
  /** A hub of a cluster checks its leadership epoch first in every transaction here (hub/cluster/fence.ts). */
  private readonly fence: Fence | undefined;

  constructor(db: Db, fence?: Fence) {
    this.db = db;
    this.fence = fence;
  }

  tx<T>(fn: () => T): T {
    const fence = this.fence;
    return this.db.transaction(fence ? () => { fence(this.db, 'changing rollout state'); return fn(); } : fn)();
  }

  insertRollout(r: RolloutRow): void {
    this.db.prepare(`INSERT INTO rollouts (id, name, version, bundle_id, plan, state, ring, ring_started_at, gates_passed_at, gates, created_at, created_by, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(r.id, r.name, r.version, r.bundleId, JSON.stringify(r.plan), r.state, r.ring, r.ringStartedAt, r.gatesPassedAt, JSON.stringify(r.gates), r.createdAt, r.createdBy, r.updatedAt);
  }

  update(id: string, f: Partial<Pick<RolloutRow, 'state' | 'ring' | 'ringStartedAt' | 'gatesPassedAt' | 'gates'>>, now: number): void {
    const cols: string[] = ['updated_at = @now'];
    const p: Record<string, unknown> = { id, now };
    if (f.state !== undefined) { cols.push('state = @state'); p.state = f.state; }
    if (f.ring !== undefined) { cols.push('ring = @ring'); p.ring = f.ring; }
    if (f.ringStartedAt !== undefined) { cols.push('ring_started_at = @rsa'); p.rsa = f.ringStartedAt; }
    if (f.gatesPassedAt !== undefined) { cols.push('gates_passed_at = @gpa'); p.gpa = f.gatesPassedAt; }
    if (f.gates !== undefined) { cols.push('gates = @gates'); p.gates = JSON.stringify(f.gates); }
    this.db.prepare(`UPDATE rollouts SET ${cols.join(', ')} WHERE id = @id`).run(p);
  }

  get(id: string): RolloutRow | undefined {
    const r = this.db.prepare('SELECT * FROM rollouts WHERE id = ?').get(id) as RawRollout | undefined;
    return r ? toRollout(r) : undefined;
  }

  list(): RolloutRow[] {
    return (this.db.prepare('SELECT * FROM rollouts ORDER BY created_at DESC, id').all() as RawRollout[]).map(toRollout);
  }

  inStates(states: readonly RolloutState[]): RolloutRow[] {
    return (this.db.prepare(`SELECT * FROM rollouts WHERE state IN (${states.map(() => '?').join(',')}) ORDER BY created_at, id`).all(...states) as RawRollout[]).map(toRollout);
  }

  activeFor(name: string): RolloutRow | undefined {
    const r = this.db.prepare(`SELECT * FROM rollouts WHERE name = ? AND state IN (${ACTIVE_STATES.map(() => '?').join(',')}) LIMIT 1`).get(name, ...ACTIVE_STATES) as RawRollout | undefined;
    return r ? toRollout(r) : undefined;
  }

  insertMembers(rolloutId: string, members: readonly { deviceId: string; ring: number; status: DeviceStatus; reason: string | null }[]): void {
    const put = this.db.prepare(`INSERT OR IGNORE INTO rollout_devices (rollout_id, device_id, ring, status, reason) VALUES (?, ?, ?, ?, ?)`);
    for (const m of members) put.run(rolloutId, m.deviceId, m.ring, m.status, m.reason);
  }

  members(rolloutId: string, ring?: number): MemberRow[] {
    const rows = ring === undefined
      ? this.db.prepare('SELECT * FROM rollout_devices WHERE rollout_id = ? ORDER BY ring, device_id').all(rolloutId)
      : this.db.prepare('SELECT * FROM rollout_devices WHERE rollout_id = ? AND ring = ? ORDER BY device_id').all(rolloutId, ring);
    return (rows as RawMember[]).map(toMember);
  }

  memberIds(rolloutId: string): Set<string> {
    return new Set((this.db.prepare('SELECT device_id FROM rollout_devices WHERE rollout_id = ?').all(rolloutId) as { device_id: string }[]).map((r) => r.device_id));
  }

  setMember(rolloutId: string, deviceId: string, f: Partial<Omit<MemberRow, 'rolloutId' | 'deviceId' | 'ring'>>): void {
    const map: Record<string, string> = { status: 'status', reason: 'reason', prevBundleId: 'prev_bundle_id', prevP95: 'prev_p95', assignedAt: 'assigned_at', counter: 'counter', doneAt: 'done_at' };
    const keys = Object.keys(f) as (keyof typeof f)[];
    if (keys.length === 0) return;
    const sets = keys.map((k) => `${map[k]} = @${k}`).join(', ');
    this.db.prepare(`UPDATE rollout_devices SET ${sets} WHERE rollout_id = @rolloutId AND device_id = @deviceId`).run({ ...f, rolloutId, deviceId });
  }
}
