/**
 * The install transition table (agent/install-table.ts) and the failure classes
 * (agent/install-failures.ts) walked as data: every phase has a row and is
 * reachable from the start, every move names phases that exist, every handler
 * is used once, every failure class named on an error code is handled, and the
 * phases that are persisted first are the in-flight ones that the hub and the
 * boot recovery table treat as "resume".
 */
import { describe, expect, it } from 'vitest';
import { AGENT_ERRORS } from '../../agent/errors.js';
import { FAILURE_CLASSES, FAILURE_HANDLING, failureClass, failureHandling } from '../../agent/install-failures.js';
import { INSTALL_HANDLER_NAMES, INSTALL_TABLE, mayMove, START_PHASE } from '../../agent/install-table.js';
import { RECOVERY_TABLE } from '../../agent/recovery.js';
import { EVENT_KINDS, IN_FLIGHT_PHASES, PHASES, type Phase } from '../../protocol/messages.js';

const rows = Object.entries(INSTALL_TABLE) as [Phase, (typeof INSTALL_TABLE)[Phase]][];

describe('install table', () => {
  it('install_table_rows_are_the_protocol_phases: one row per phase, every from-phase exists', () => {
    expect(Object.keys(INSTALL_TABLE).sort()).toEqual([...PHASES].sort());
    for (const [phase, step] of rows) {
      for (const from of step.from) expect(PHASES, `${phase} comes from ${from}`).toContain(from);
      expect(new Set(step.from).size, `${phase}: a from-phase twice`).toBe(step.from.length);
    }
    // Only the start has no from-phase: anything else would be a phase nothing leads to.
    expect(rows.filter(([, s]) => s.from.length === 0).map(([p]) => p)).toEqual([START_PHASE]);
  });

  it('install_table_every_phase_reachable: walking the moves from the start reaches every phase', () => {
    const seen = new Set<Phase>([START_PHASE]);
    for (let grew = true; grew;) {
      grew = false;
      for (const [phase, step] of rows) {
        if (!seen.has(phase) && step.from.some((f) => seen.has(f))) { seen.add(phase); grew = true; }
      }
    }
    expect([...seen].sort()).toEqual([...PHASES].sort());
    // The happy path, in order, is a chain of allowed moves.
    const path: Phase[] = ['idle', 'fetching', 'verifying', 'staging', 'swapping', 'probation', 'committed'];
    for (let i = 1; i < path.length; i++) expect(mayMove(path[i - 1], path[i]), `${path[i - 1]} → ${path[i]}`).toBe(true);
    // And nothing skips the checks: no move into swapping except from staging, none back to fetching from later.
    for (const p of PHASES) if (p !== 'staging') expect(mayMove(p, 'swapping'), `${p} → swapping`).toBe(false);
    for (const p of ['verifying', 'staging', 'swapping', 'probation', 'committed'] as const) expect(mayMove(p, 'fetching'), `${p} → fetching`).toBe(false);
  });

  it('install_table_handlers: each handler runs exactly one phase; phases without one are entered by a verdict or a failure', () => {
    const used = rows.flatMap(([, s]) => (s.handler ? [s.handler] : []));
    expect([...used].sort()).toEqual([...INSTALL_HANDLER_NAMES].sort());
    for (const [phase, step] of rows) {
      if (step.handler === null) {
        expect(['rolled-back', 'failed'], phase).toContain(phase);
        expect(step.failedEvent, phase).toBeNull();
      } else {
        expect(EVENT_KINDS, phase).toContain(step.failedEvent);
      }
    }
  });

  it('install_table_persisted_first_are_in_flight: the hub, the installer and boot recovery share one list', () => {
    const persisted = rows.filter(([, s]) => s.persistFirst).map(([p]) => p);
    expect(persisted.sort()).toEqual([...IN_FLIGHT_PHASES].sort());
    // A restart in a phase persisted before its work resumes that work.
    for (const p of IN_FLIGHT_PHASES) expect(RECOVERY_TABLE[p].then, p).toBe('resume');
    // A failure can be recorded from every phase that runs work.
    for (const [phase, step] of rows) if (step.handler) expect(mayMove(phase, 'failed'), `${phase} → failed`).toBe(true);
  });
});

describe('failure classes', () => {
  const named = Object.entries(AGENT_ERRORS).flatMap(([code, spec]) => ('failure' in spec ? [[code, spec.failure] as const] : []));

  it('failure_classes_all_handled: every class named on an error code has a handling row, and every row is used', () => {
    expect(Object.keys(FAILURE_HANDLING).sort()).toEqual([...FAILURE_CLASSES].sort());
    for (const [code, cls] of named) expect(FAILURE_CLASSES, code).toContain(cls);
    // `rejected` is the default; every other class is named by at least one code.
    for (const cls of FAILURE_CLASSES.filter((c) => c !== 'rejected')) expect(named.some(([, c]) => c === cls), cls).toBe(true);
    // No two classes are handled the same way (one of them would be a second name for the other).
    const shapes = FAILURE_CLASSES.map((c) => JSON.stringify(FAILURE_HANDLING[c]));
    expect(new Set(shapes).size).toBe(shapes.length);
  });

  it('failure_class_of_a_code: read from the code entry, rejected for codes without one or of other rooms', () => {
    expect(failureClass('AGENT_ERR_FETCH_TIMEOUT')).toBe('transient');
    expect(failureHandling('AGENT_ERR_FETCH_TIMEOUT')).toMatchObject({ retryOnRedelivery: true, keepStaging: true, refuseBundle: false });
    expect(failureHandling('AGENT_ERR_PAYLOAD_HASH')).toMatchObject({ refuseBundle: true, retryOnRedelivery: false });
    expect(failureHandling('AGENT_ERR_CHUNK_HASH')).toMatchObject({ keepStaging: true, retryOnRedelivery: false, refuseBundle: false });
    expect(failureHandling('AGENT_ERR_ASSIGNMENT_SIGNATURE').rejectEvent).toBe('security');
    expect(failureClass('AGENT_ERR_FETCH_SLOW')).toBe('rejected');
    expect(failureClass('BUNDLE_ERR_SOMETHING')).toBe('rejected');
    expect(failureClass('constructor')).toBe('rejected');
  });
});
