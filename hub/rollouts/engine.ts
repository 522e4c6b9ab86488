/**
 * The rollout engine: a tick loop over the rollouts in SQLite, driven by the
 * hub's injectable clock (soak, grace, rate and maintenance windows all read
 * `now()`), so tests control time. Each tick, per rollout: learn outcomes from
 * what devices reported (never from what the hub hoped), place devices that
 * appeared late, assign the current ring's waiting devices (compatible ones,
 * within the window and the rate), judge the ring, then promote, complete or
 * halt (and roll back). Operator actions (rollout-actions.ts) only change rows;
 * every assignment is issued here, one tick at a time, so no two paths race.
 *
 * Crash safety: a device is marked `assigning` (with its previous bundle) in
 * the same transaction that precedes the assignment; on start, `assigning`
 * rows are settled against the assignments table (issued → assigned, not
 * issued → waiting), so a SIGKILL between the two never duplicates or loses one.
 */
import type { Logger } from 'pino';
import { errorCode } from '@fleetcast/protocol/errors.js';
import { IN_FLIGHT_PHASES } from '@fleetcast/protocol/messages.js';
import type { Assigner } from '../assignments.js';
import type { BundleRecord, HubStore } from '../store.js';
import { hubTestPause } from '../test-pause.js';
import { incompatibility } from './compat.js';
import { insideWindow } from './cron-window.js';
import { recordDecision } from './decisions.js';
import { NO_DRIFT, type DeviceHealth, type GateInputs, type HealthReader } from './gate-inputs.js';
import { judgeRing, type GateValues } from './gates.js';
import { placeLateDevice } from './rings.js';
import type { MemberRow, RolloutRow, RolloutStore } from './rollout-store.js';
import type { Rate } from './spec.js';

export interface EngineDeps {
  rollouts: RolloutStore;
  store: HubStore;
  assigner: Assigner;
  inputs: GateInputs;
  now: () => number;
  logger: Logger;
  /**
   * Settle rows a killed hub left in `assigning` when start() is called (a hub of a cluster, once elected),
   * instead of at construction (a hub alone): a follower must not write what only the leader writes.
   */
  settleOnStart?: boolean;
}

const IN_FLIGHT = new Set<string>(IN_FLIGHT_PHASES);

/** Devices allowed to have been assigned `elapsedMs` after the ring started (IoT Jobs-style exponential rate when growth > 1). */
export function allowedByRate(rate: Rate | null, elapsedMs: number): number {
  if (!rate) return Number.POSITIVE_INFINITY;
  const minutes = Math.floor(Math.max(0, elapsedMs) / 60_000);
  let total = 0; let step = rate.perMinute;
  for (let k = 0; k <= minutes && total < 1e9; k++) { total += step; step *= rate.growth; }
  return Math.floor(total);
}

/** The default health reader: the `health` window agents put in their state reports. */
export function stateReportHealth(store: HubStore): HealthReader {
  return {
    health(bundleId, ids) {
      // json_extract in SQLite, not JSON.parse of every report: a broad ring is thousands of devices, judged every tick.
      const q = store.db.prepare(`SELECT id, json_extract(state, '$.health.requests') AS requests, json_extract(state, '$.health.errors') AS errors,
        json_extract(state, '$.health.p95Ms') AS p95 FROM devices WHERE id = ? AND json_extract(state, '$.health.bundleId') = ?`);
      const out: DeviceHealth[] = [];
      for (const id of ids) {
        const h = q.get(id, bundleId) as { id: string; requests: number; errors: number; p95: number | null } | undefined;
        if (h) out.push({ deviceId: id, bundleId, requests: h.requests, errors: h.errors, p95Ms: h.p95 });
      }
      return out;
    },
  };
}

export class RolloutEngine {
  private readonly d: EngineDeps;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(d: EngineDeps) {
    this.d = d;
    if (!d.settleOnStart) this.settleAssigning();
  }

  start(everyMs: number): void {
    if (this.d.settleOnStart) this.settleAssigning();
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => { void this.tick().catch((e: unknown) => this.d.logger.error({ err: e }, 'rollout tick failed; retrying at the next tick')); }, everyMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
  }

  /** One pass over every live rollout; concurrent calls join (and re-run once) rather than overlap. */
  tick(): Promise<void> {
    if (this.running) { this.again = true; return this.running; }
    this.running = (async () => {
      do { this.again = false; await this.pass(); } while (this.again);
    })().finally(() => { this.running = undefined; });
    return this.running;
  }

  private async pass(): Promise<void> {
    for (const r of this.d.rollouts.inStates(['running', 'paused', 'rolling-back', 'halted'])) {
      try {
        await this.step(r.id);
      } catch (e) {
        this.d.logger.error({ err: e, rolloutId: r.id, code: errorCode(e) }, 'rollout step failed');
      }
    }
  }

  private async step(id: string): Promise<void> {
    const R = this.d.rollouts;
    let r = R.get(id)!;
    const bundle = this.d.store.getBundle(r.bundleId);
    if (!bundle) return;
    this.observe(r);
    if (r.state === 'rolling-back') { await this.rollBack(r); return; }
    if (r.state !== 'running') return;
    this.placeLate(r);
    if (r.ringStartedAt === null) {
      if (!insideWindow(r.plan.window, this.d.now())) return;
      R.update(id, { ringStartedAt: this.d.now() }, this.d.now());
      r = R.get(id)!;
    }
    await this.assignWaiting(r, bundle);
    r = R.get(id)!;
    if (r.state !== 'running') return;
    this.observe(r);
    this.judge(r);
  }

  /** Settle rows a killed hub left in `assigning` against what the assignments table holds. */
  private settleAssigning(): void {
    const R = this.d.rollouts;
    const rows = R.db.prepare("SELECT rollout_id AS r, device_id AS d FROM rollout_devices WHERE status = 'assigning'").all() as { r: string; d: string }[];
    R.tx(() => {
      for (const { r, d } of rows) {
        const ro = R.get(r);
        const a = this.d.store.getAssignment(d);
        if (ro && a && a.rolloutId === r && a.bundleId === ro.bundleId) R.setMember(r, d, { status: 'assigned', counter: a.counter, assignedAt: this.d.now() });
        else R.setMember(r, d, { status: 'waiting' });
      }
    });
  }

  /** Outcomes from the registry: what each device says it runs. */
  private observe(r: RolloutRow): void {
    const R = this.d.rollouts;
    const now = this.d.now();
    const changes: [string, Partial<MemberRow>][] = [];
    // One query with the few report fields needed (json_extract in SQLite): this runs every tick over the whole rollout.
    const rows = R.db.prepare(`SELECT m.device_id AS id, m.ring, m.status, m.counter, m.assigned_at AS assignedAt, d.active_bundle_id AS active, d.phase,
        json_extract(d.state, '$.active.name') AS activeName, json_extract(d.state, '$.active.version') AS activeVersion,
        json_extract(d.state, '$.lastError.code') AS errCode, json_extract(d.state, '$.lastError.bundleId') AS errBundle,
        json_extract(d.state, '$.target.bundleId') AS targetBundle, json_extract(d.state, '$.target.counter') AS targetCounter
      FROM rollout_devices m JOIN devices d ON d.id = m.device_id
      WHERE m.rollout_id = ? AND m.status IN ('assigned', 'installed', 'timed-out')`).all(r.id) as {
        id: string; ring: number; status: MemberRow['status']; counter: number | null; assignedAt: number | null; active: string | null; phase: string;
        activeName: string | null; activeVersion: number | null; errCode: string | null; errBundle: string | null; targetBundle: string | null; targetCounter: number | null;
      }[];
    for (const m of rows) {
      const grace = r.plan.rings[m.ring]?.gates.graceMs ?? Number.POSITIVE_INFINITY;
      if (m.active === r.bundleId) {
        if (m.status !== 'installed') changes.push([m.id, { status: 'installed', doneAt: now, reason: null }]);
      } else if (m.status === 'installed') {
        changes.push([m.id, { status: 'failed', doneAt: now, reason: `the device went back to ${m.activeName ? `${m.activeName}@${m.activeVersion}` : 'no model'}${m.errCode ? ` (${m.errCode})` : ''}` }]);
      } else if (m.errBundle === r.bundleId && !IN_FLIGHT.has(m.phase) && !(m.targetBundle === r.bundleId && m.counter !== null && m.targetCounter !== null && m.targetCounter < m.counter)) {
        changes.push([m.id, { status: 'failed', doneAt: now, reason: m.errCode }]);
      } else if (m.status === 'assigned' && m.assignedAt !== null && now - m.assignedAt > grace) {
        changes.push([m.id, { status: 'timed-out', reason: `no install reported within ${Math.round(grace / 1000)} s` }]);
      }
    }
    if (changes.length) R.tx(() => { for (const [dev, f] of changes) R.setMember(r.id, dev, f); });
  }

  private placeLate(r: RolloutRow): void {
    const lateIds = this.d.rollouts.db.prepare('SELECT id FROM devices WHERE id NOT IN (SELECT device_id FROM rollout_devices WHERE rollout_id = ?)').all(r.id) as { id: string }[];
    if (lateIds.length === 0) return;
    const late = lateIds.map((x) => this.d.store.getDevice(x.id)).filter((d) => d !== undefined);
    const add = late.map((d) => ({ deviceId: d.id, ring: placeLateDevice(r.id, r.plan.rings, { id: d.id, capabilities: d.state.capabilities }) })).filter((x) => x.ring >= 0);
    this.d.rollouts.tx(() => this.d.rollouts.insertMembers(r.id, add.map((x) => ({ ...x, status: 'waiting' as const, reason: null }))));
  }

  private async assignWaiting(r: RolloutRow, bundle: BundleRecord): Promise<void> {
    const R = this.d.rollouts;
    const now = this.d.now();
    if (!insideWindow(r.plan.window, now)) return;
    const ring = r.plan.rings[r.ring];
    const inRing = R.members(r.id, r.ring);
    const started = inRing.filter((m) => m.status !== 'waiting' && m.status !== 'skipped').length;
    const budget = Math.max(0, allowedByRate(ring.rate, now - (r.ringStartedAt ?? now)) - started);
    // Devices that joined late in rings already passed are assigned too (they are behind, not new).
    const waiting = R.members(r.id).filter((m) => m.status === 'waiting' && m.ring <= r.ring);
    if (waiting.length === 0) return;
    const go: string[] = [];
    let inCurrent = 0;
    R.tx(() => {
      for (const m of waiting) {
        const dev = this.d.store.getDevice(m.deviceId);
        if (!dev) continue;
        const why = incompatibility(bundle.manifest, dev.state);
        if (why) { R.setMember(r.id, m.deviceId, { status: 'skipped', reason: why }); continue; }
        if (m.ring === r.ring) {
          if (inCurrent >= budget) continue;
          inCurrent++;
        }
        const prev = dev.state.active && dev.state.active.bundleId !== bundle.id ? dev.state.active.bundleId : null;
        const p95 = dev.state.health && dev.state.health.bundleId === prev ? dev.state.health.p95Ms : null;
        R.setMember(r.id, m.deviceId, { status: 'assigning', prevBundleId: prev, prevP95: p95 });
        go.push(m.deviceId);
      }
    });
    if (go.length === 0) return;
    // Crash tests stop here: rows persisted as `assigning`, nothing issued yet (settleAssigning's case).
    await hubTestPause('assigning', r.plan.rings[r.ring].name);
    try {
      await this.issue(bundle, go, r.id, (dev) => r.plan.rings[waiting.find((w) => w.deviceId === dev)!.ring].name);
    } finally {
      // Settle what was issued, even when issuing failed part-way: nothing stays `assigning`.
      R.tx(() => {
        for (const dev of go) {
          const a = this.d.store.getAssignment(dev);
          if (a && a.rolloutId === r.id && a.bundleId === bundle.id) R.setMember(r.id, dev, { status: 'assigned', counter: a.counter, assignedAt: this.d.now() });
          else R.setMember(r.id, dev, { status: 'waiting' });
        }
      });
    }
  }

  /** Issue assignments per ring name; a broker that did not acknowledge is the refresher's job (the rows are stored). */
  private async issue(bundle: BundleRecord, ids: string[], rolloutId: string, ringOf: (id: string) => string): Promise<void> {
    const byRing = new Map<string, string[]>();
    for (const id of ids) { const k = ringOf(id); byRing.set(k, [...(byRing.get(k) ?? []), id]); }
    for (const [ring, devs] of byRing) {
      try {
        await this.d.assigner.assign(bundle, devs, { rolloutId, ring, actor: 'engine' });
      } catch (e) {
        if (errorCode(e) !== 'HUB_ERR_BROKER_UNREACHABLE') throw e;
        this.d.logger.warn({ rolloutId, ring, devices: devs.length }, 'assignments stored but not yet acknowledged by the broker; the refresher retries');
      }
    }
  }

  /** Judge the current ring; promote, complete or halt. */
  private judge(r: RolloutRow): void {
    const R = this.d.rollouts;
    const ring = r.plan.rings[r.ring];
    const members = R.members(r.id, r.ring);
    const ids = members.filter((m) => m.status === 'installed').map((m) => m.deviceId);
    const health = (this.d.inputs.health ?? stateReportHealth(this.d.store)).health(r.bundleId, ids);
    const drift = (this.d.inputs.drift ?? NO_DRIFT).maxDrift(r.bundleId, ring.name, r.ringStartedAt ?? 0);
    const v = judgeRing({ members, health, drift, gates: ring.gates, now: this.d.now() });
    const now = this.d.now();
    const gates = { ...r.gates, [ring.name]: v };
    R.tx(() => {
      R.update(r.id, { gates }, now);
      if (v.verdict === 'fail') this.halt(r, v, now);
      else if (v.verdict === 'pass') {
        if (r.ring === r.plan.rings.length - 1) {
          R.update(r.id, { state: 'completed' }, now);
          recordDecision(R.db, { rolloutId: r.id, kind: 'complete', actor: 'engine', at: now, reason: `every ring passed its gates; ${ring.name} was the last`, ring: ring.name, gates: v as unknown as Record<string, unknown> });
        } else if (r.plan.autoPromote) {
          promoteRow(R, r, now, 'engine', `gates of ${ring.name} passed`, v);
        } else if (r.gatesPassedAt === null) {
          R.update(r.id, { gatesPassedAt: now }, now);
        }
      }
    });
  }

  private halt(r: RolloutRow, v: GateValues, now: number): void {
    const R = this.d.rollouts;
    const ring = r.plan.rings[r.ring].name;
    const why = `gate(s) ${v.failed.join(', ')} failed in ring ${ring}`;
    recordDecision(R.db, { rolloutId: r.id, kind: 'halt', actor: 'engine', at: now, reason: why, ring, gates: v as unknown as Record<string, unknown> });
    if (r.plan.onFailure === 'rollback') {
      R.update(r.id, { state: 'rolling-back' }, now);
      recordDecision(R.db, { rolloutId: r.id, kind: 'rollback', actor: 'engine', at: now, reason: `automatic: ${why}`, ring, gates: null });
    } else {
      R.update(r.id, { state: 'halted' }, now);
    }
    this.d.logger.warn({ rolloutId: r.id, ring, failed: v.failed }, 'rollout halted by its gates');
  }

  /** Assign the previous bundle again to every device this rollout reached. */
  private async rollBack(r: RolloutRow): Promise<void> {
    const R = this.d.rollouts;
    const reached = R.members(r.id).filter((m) => ['assigned', 'installed', 'failed', 'timed-out'].includes(m.status));
    const byPrev = new Map<string, MemberRow[]>();
    const stuck: string[] = [];
    for (const m of reached) {
      if (m.prevBundleId === null) { stuck.push(m.deviceId); continue; }
      const a = this.d.store.getAssignment(m.deviceId);
      // Already re-assigned by a hub that died before recording it.
      if (a && a.rolloutId === r.id && a.bundleId === m.prevBundleId) { R.setMember(r.id, m.deviceId, { status: 'rolled-back', counter: a.counter }); continue; }
      byPrev.set(m.prevBundleId, [...(byPrev.get(m.prevBundleId) ?? []), m]);
    }
    for (const [prevId, ms] of byPrev) {
      const prev = this.d.store.getBundle(prevId);
      if (!prev) { stuck.push(...ms.map((m) => m.deviceId)); continue; }
      await this.issue(prev, ms.map((m) => m.deviceId), r.id, (dev) => r.plan.rings[ms.find((m) => m.deviceId === dev)!.ring].name);
      R.tx(() => { for (const m of ms) { const a = this.d.store.getAssignment(m.deviceId); R.setMember(r.id, m.deviceId, { status: 'rolled-back', counter: a?.counter ?? null, reason: `back to ${prev.name}@${prev.version}` }); } });
    }
    const now = this.d.now();
    R.tx(() => {
      for (const d of stuck) R.setMember(r.id, d, { reason: 'no previous bundle to roll back to; the device keeps what it runs' });
      if (R.get(r.id)?.state === 'rolling-back') R.update(r.id, { state: 'rolled-back' }, now);
    });
    this.d.logger.warn({ rolloutId: r.id, devices: reached.length - stuck.length, without: stuck.length }, 'rollout rolled back');
  }
}

/** Move to the next ring (shared by automatic and manual promotion). */
export function promoteRow(R: RolloutStore, r: RolloutRow, now: number, actor: string, reason: string, v: GateValues | null): void {
  const from = r.plan.rings[r.ring].name;
  const to = r.plan.rings[r.ring + 1].name;
  R.update(r.id, { ring: r.ring + 1, ringStartedAt: null, gatesPassedAt: null }, now);
  recordDecision(R.db, { rolloutId: r.id, kind: 'promote', actor, at: now, reason: `${from} → ${to}: ${reason}`, ring: to, gates: v as unknown as Record<string, unknown> | null });
}
