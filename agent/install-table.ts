/**
 * The install flow as one transition table (DESIGN "State machines … are
 * data": Mender's state table). installer.ts runs it: from the current phase,
 * the handler names the next one; the loop checks the move is in the table,
 * persists the phase first when the row says so, then runs the row's handler.
 * A failure is handled by its code's class (install-failures.ts) and reported
 * as the row's failed event. Boot recovery is the other table (recovery.ts):
 * what a restarted agent does with each phase this one persisted.
 *
 * | phase       | from                       | persisted first | handler | a failure is reported as |
 * |-------------|----------------------------|-----------------|---------|--------------------------|
 * | idle        | (start of a run)           | no (accepted)   | start   | stage-failed             |
 * | fetching    | idle                       | yes             | fetch   | fetch-failed             |
 * | verifying   | fetching                   | yes             | verify  | verify-failed            |
 * | staging     | idle, verifying            | yes             | stage   | stage-failed             |
 * | swapping    | staging                    | yes             | swap    | stage-failed             |
 * | probation   | swapping                   | with the swap   | watch   | stage-failed             |
 * | committed   | idle, swapping, probation  | with the swap   | commit  | stage-failed             |
 * | rolled-back | probation                  | with the verdict| -       | -                        |
 * | failed      | any phase that runs work   | with the error  | -       | -                        |
 *
 * idle → staging: a hash-valid unpacked model from an interrupted run is reused.
 * A fresh assignment is accepted with one fsynced write that records the phase the
 * start row picks (fetching, staging or committed), so that phase's own write is skipped.
 * idle → committed: the bundle is already the active one (a re-signed assignment).
 * probation → committed | rolled-back | failed: the window's verdict, later, outside the loop.
 */
import type { Phase } from '@fleetcast/protocol/messages.js';
import type { EventKind } from './reporter.js';

/**
 * The installer's work, one function per row (installer.ts implements them); each returns the next
 * phase, or null when the run ends. start: where this run begins (the bundle is active already, an
 * unpacked model is reusable, or fetch); fetch: chunks into staging, each hash-checked, resumable;
 * verify: the assembled payload against the signed hash; stage: decompress into a versioned folder
 * (or finish the decompression the fetch fed as chunks arrived, on disk),
 * load a shadow session, run the golden cases; swap: move the pointer and persist the new active slot
 * with the next phase; watch: start the probation window; commit: say the install is done.
 */
export const INSTALL_HANDLER_NAMES = ['start', 'fetch', 'verify', 'stage', 'swap', 'watch', 'commit'] as const;
export type InstallHandlerName = (typeof INSTALL_HANDLER_NAMES)[number];
export type InstallHandlers<Run> = Readonly<Record<InstallHandlerName, (run: Run) => Promise<Phase | null>>>;

export interface InstallStep {
  /** The phases a run may move here from (empty: the run starts here). */
  readonly from: readonly Phase[];
  /**
   * The loop writes the phase (fsynced) and tells the hub before the handler runs, so a power cut
   * during the work finds it on boot. False: another write records it (the swap writes the pointer
   * and the next phase in one write, so no power cut can separate them; a failure writes `failed`
   * with its code).
   */
  readonly persistFirst: boolean;
  /** The work of this phase, or null for a phase entered outside the loop (a verdict, a failure). */
  readonly handler: InstallHandlerName | null;
  /** The event a failure during this phase's work is reported as (the failure's class is its code's). */
  readonly failedEvent: EventKind | null;
}

export const INSTALL_TABLE: Readonly<Record<Phase, InstallStep>> = Object.freeze({
  idle: { from: [], persistFirst: false, handler: 'start', failedEvent: 'stage-failed' },
  fetching: { from: ['idle'], persistFirst: true, handler: 'fetch', failedEvent: 'fetch-failed' },
  verifying: { from: ['fetching'], persistFirst: true, handler: 'verify', failedEvent: 'verify-failed' },
  staging: { from: ['idle', 'verifying'], persistFirst: true, handler: 'stage', failedEvent: 'stage-failed' },
  swapping: { from: ['staging'], persistFirst: true, handler: 'swap', failedEvent: 'stage-failed' },
  probation: { from: ['swapping'], persistFirst: false, handler: 'watch', failedEvent: 'stage-failed' },
  committed: { from: ['idle', 'swapping', 'probation'], persistFirst: false, handler: 'commit', failedEvent: 'stage-failed' },
  'rolled-back': { from: ['probation'], persistFirst: false, handler: null, failedEvent: null },
  failed: { from: ['idle', 'fetching', 'verifying', 'staging', 'swapping', 'probation', 'committed'], persistFirst: false, handler: null, failedEvent: null },
});

/** The phase a run starts in. */
export const START_PHASE: Phase = 'idle';

/** Whether the table allows a move (the loop refuses any other: a handler bug, not a device state). */
export function mayMove(from: Phase, to: Phase): boolean {
  return INSTALL_TABLE[to].from.includes(from);
}
