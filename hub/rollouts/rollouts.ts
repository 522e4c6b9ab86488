/**
 * The operator's side of rollouts: start (with supersede), pause, resume,
 * promote, abort, rollback, status and history. Each action checks the state,
 * changes the rows and records its decision in one transaction, then nudges
 * the engine; nothing here issues assignments itself (engine.ts does).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Assigner } from '../assignments.js';
import { hubError } from '../errors.js';
import type { HubStore } from '../store.js';
import { checkActionAllowed, ROLLOUT_ACTIONS, type RolloutActionName as Action } from './actions.js';
import { listDecisions, recordDecision, type DecisionRecord } from './decisions.js';
import { createGateInputs, type GateInputs } from './gate-inputs.js';
import { promoteRow, RolloutEngine } from './engine.js';
import { placeDevices } from './rings.js';
import { RolloutStore, type RolloutRow } from './rollout-store.js';
import { buildPlan, parseRolloutFile } from './spec.js';
import { refuseUnknownDevices } from '../known-devices.js';

export interface StartRequest {
  name: string;
  version: number;
  /** A rollout file's content (rings, gates, policy, window, rate, autoPromote). */
  spec?: unknown;
  autoPromote?: boolean;
  window?: string;
  rate?: unknown;
  supersede?: boolean;
  reason?: string;
  /** Rings may name device ids the hub has never seen. */
  allowUnknown?: boolean;
}

export interface RingStatus {
  name: string;
  index: number;
  devices: number;
  counts: Record<string, number>;
  gates: unknown;
}

export interface RolloutStatus {
  id: string; name: string; version: number; bundleId: string; state: string;
  ring: string; ringIndex: number; ringStartedAt: number | null; awaitingPromotion: boolean;
  autoPromote: boolean; window: string | null; onFailure: string;
  createdAt: number; createdBy: string; updatedAt: number;
  rings: RingStatus[];
  skipped: { deviceId: string; ring: string; reason: string }[];
}


export class Rollouts {
  readonly store: RolloutStore;
  readonly engine: RolloutEngine;
  readonly inputs: GateInputs;
  private readonly hub: HubStore;
  private readonly now: () => number;
  private readonly logger: Logger;

  constructor(o: { store: HubStore; assigner: Assigner; now: () => number; logger: Logger; inputs?: GateInputs; settleOnStart?: boolean }) {
    this.hub = o.store;
    this.now = o.now;
    this.logger = o.logger;
    this.inputs = o.inputs ?? createGateInputs();
    this.store = new RolloutStore(o.store.db, (db, what) => o.store.fence?.(db, what));
    this.engine = new RolloutEngine({ rollouts: this.store, store: o.store, assigner: o.assigner, inputs: this.inputs, now: o.now, logger: o.logger, settleOnStart: o.settleOnStart ?? false });
  }

  /** Run the engine now, in the background; a failure is logged and the next timer tick tries again. */
  private kick(): void {
    this.engine.tick().catch((e: unknown) => this.logger.error({ err: e }, 'rollout engine tick failed; the next tick retries'));
  }

  start(req: StartRequest, actor: string): RolloutStatus {
    const bundle = this.hub.getBundleByVersion(req.name, req.version);
    if (!bundle) throw hubError('HUB_ERR_UNKNOWN_BUNDLE', `${req.name}@${req.version}`);
    const plan = buildPlan(parseRolloutFile(req.spec ?? {}), { autoPromote: req.autoPromote, window: req.window, rate: req.rate });
    // A ring that names a mistyped id would wait for a device that never comes: refused before anything starts.
    if (!req.allowUnknown) refuseUnknownDevices(this.hub, plan.rings.flatMap((r) => r.devices ?? []), 'a ring of the rollout');
    const devices = this.hub.listDevices();
    if (devices.length === 0) throw hubError('HUB_ERR_NO_TARGETS', 'no device has reported to the hub yet');
    const R = this.store;
    const id = `ro-${randomBytes(6).toString('hex')}`;
    const now = this.now();
    R.tx(() => {
      const active = R.activeFor(req.name);
      if (active && !req.supersede) throw hubError('HUB_ERR_ROLLOUT_ACTIVE', `${active.id} (${active.name}@${active.version}, ${active.state})`, { rolloutId: active.id });
      if (active) {
        R.update(active.id, { state: 'superseded' }, now);
        recordDecision(R.db, { rolloutId: active.id, kind: 'supersede', actor, at: now, reason: `superseded by ${id} (${req.name}@${req.version})${req.reason ? `: ${req.reason}` : ''}`, ring: active.plan.rings[active.ring]?.name ?? null, gates: null });
      }
      const placed = placeDevices(id, plan.rings, devices.map((d) => ({ id: d.id, capabilities: d.state.capabilities })));
      const row: RolloutRow = {
        id, name: req.name, version: req.version, bundleId: bundle.id, plan, state: 'running', ring: 0, ringStartedAt: null, gatesPassedAt: null, gates: {},
        createdAt: now, createdBy: actor, updatedAt: now,
      };
      R.insertRollout(row);
      R.insertMembers(id, [...placed].map(([deviceId, ring]) => ({ deviceId, ring, status: 'waiting' as const, reason: null })));
      recordDecision(R.db, {
        rolloutId: id, kind: 'start', actor, at: now, reason: req.reason ?? `start ${req.name}@${req.version}`, ring: plan.rings[0].name,
        gates: { bundleId: bundle.id, supersedes: active?.id ?? null, rings: plan.rings.map((r) => ({ name: r.name, devices: [...placed.values()].filter((x) => plan.rings[x] === r).length })) },
      });
    });
    this.kick();
    return this.status(id);
  }

  /** One of the operator's actions, as the table in actions.ts gives it: allowed states, handler, resulting state. */
  act(id: string, action: Action, actor: string, reason?: string): RolloutStatus {
    const R = this.store;
    const now = this.now();
    const row = ROLLOUT_ACTIONS[action];
    R.tx(() => {
      const r = R.get(id);
      if (!r) throw hubError('HUB_ERR_UNKNOWN_ROLLOUT', id);
      checkActionAllowed(action, r.state);
      const ring = r.plan.rings[r.ring].name;
      row.handler({
        rollout: r, ring,
        // The current ring's last gate values go with every operator decision: what the operator saw.
        note: (why) => recordDecision(R.db, { rolloutId: id, kind: action, actor, at: now, reason: reason ?? why, ring, gates: (r.gates[ring] ?? null) as Record<string, unknown> | null }),
        promote: (why, v) => promoteRow(R, r, now, actor, reason ?? why, v),
      });
      if (row.to !== null) R.update(id, { state: row.to }, now);
    });
    this.kick();
    return this.status(id);
  }

  get(id: string): RolloutRow {
    const r = this.store.get(id);
    if (!r) throw hubError('HUB_ERR_UNKNOWN_ROLLOUT', id);
    return r;
  }

  status(id: string): RolloutStatus {
    const r = this.get(id);
    const members = this.store.members(id);
    const rings = r.plan.rings.map((ring, index): RingStatus => {
      const ms = members.filter((m) => m.ring === index);
      const counts: Record<string, number> = { waiting: 0, pending: 0, installed: 0, failed: 0, 'timed-out': 0, skipped: 0, 'rolled-back': 0 };
      // An assigned device is "pending" (not failed) until its grace period ends: it may be offline.
      for (const m of ms) counts[m.status === 'assigned' || m.status === 'assigning' ? 'pending' : m.status]++;
      return { name: ring.name, index, devices: ms.length, counts, gates: r.gates[ring.name] ?? null };
    });
    return {
      id, name: r.name, version: r.version, bundleId: r.bundleId, state: r.state, ring: r.plan.rings[r.ring].name, ringIndex: r.ring,
      ringStartedAt: r.ringStartedAt, awaitingPromotion: r.state === 'running' && r.gatesPassedAt !== null,
      autoPromote: r.plan.autoPromote, window: r.plan.window, onFailure: r.plan.onFailure,
      createdAt: r.createdAt, createdBy: r.createdBy, updatedAt: r.updatedAt, rings,
      skipped: members.filter((m) => m.status === 'skipped').map((m) => ({ deviceId: m.deviceId, ring: r.plan.rings[m.ring].name, reason: m.reason ?? '' })),
    };
  }

  list(): RolloutStatus[] {
    return this.store.list().map((r) => this.status(r.id));
  }

  history(id: string): DecisionRecord[] {
    this.get(id);
    return listDecisions(this.store.db, id);
  }

  close(): Promise<void> {
    return this.engine.close();
  }
}
