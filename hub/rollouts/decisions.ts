/**
 * Every rollout decision (start, promote, halt, rollback, abort, pause, resume,
 * supersede, complete) as one row with a stable JSON record: who, when, why and
 * the gate values that led to it. `recordDecision` is the single entry point, so
 * the transparency log (issue #6) can hook it: `onDecision` listeners see the
 * exact canonical bytes stored.
 */
import type { Db } from '../db/db.js';

export const DECISION_KINDS = ['start', 'promote', 'halt', 'rollback', 'abort', 'pause', 'resume', 'supersede', 'complete', 'skip'] as const;
export type DecisionKind = (typeof DECISION_KINDS)[number];

export interface DecisionRecord {
  type: 'fleetcast.rollout-decision/v1';
  rolloutId: string;
  seq: number;
  kind: DecisionKind;
  /** Token id and role of the caller, or "engine" for automatic decisions. */
  actor: string;
  at: number;
  reason: string;
  ring: string | null;
  /** Gate values (or other facts) behind the decision. */
  gates: Record<string, unknown> | null;
}

export type DecisionListener = (record: DecisionRecord, canonical: string) => void;

const listeners = new Set<DecisionListener>();

/** Subscribe to every decision recorded in this process (after its transaction commits). */
export function onDecision(fn: DecisionListener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Keys in a fixed order, so the stored text is the same bytes every time (a log leaf must be). */
function canonical(r: DecisionRecord): string {
  return JSON.stringify({ type: r.type, rolloutId: r.rolloutId, seq: r.seq, kind: r.kind, actor: r.actor, at: r.at, reason: r.reason, ring: r.ring, gates: r.gates });
}

/**
 * Append a decision. Call it inside the transaction that makes the change it
 * records, so the change and its record commit together; listeners run after.
 */
export function recordDecision(db: Db, d: Omit<DecisionRecord, 'type' | 'seq'>): DecisionRecord {
  const row = db.prepare('SELECT COALESCE(MAX(seq), 0) AS s FROM rollout_decisions WHERE rollout_id = ?').get(d.rolloutId) as { s: number };
  const rec: DecisionRecord = { type: 'fleetcast.rollout-decision/v1', seq: row.s + 1, ...d };
  const text = canonical(rec);
  db.prepare('INSERT INTO rollout_decisions (rollout_id, seq, kind, at, record) VALUES (?, ?, ?, ?, ?)').run(rec.rolloutId, rec.seq, rec.kind, rec.at, text);
  const notify = () => {
    // Inside a transaction that was rolled back, the decision never happened: tell no one.
    if (!db.prepare('SELECT 1 FROM rollout_decisions WHERE rollout_id = ? AND seq = ?').get(rec.rolloutId, rec.seq)) return;
    for (const fn of listeners) { try { fn(rec, text); } catch { /* a listener must not undo a decision */ } }
  };
  if (db.inTransaction) queueMicrotask(notify); else notify();
  return rec;
}

export function listDecisions(db: Db, rolloutId: string): DecisionRecord[] {
  const rows = db.prepare('SELECT record FROM rollout_decisions WHERE rollout_id = ? ORDER BY seq').all(rolloutId) as { record: string }[];
  return rows.map((r) => JSON.parse(r.record) as DecisionRecord);
}
