/**
 * What a failed install leaves behind and what it does next, by failure class.
 * The class sits on each error code's entry in errors.ts (`failure: …`); this
 * table says what each class means, so the installer (and the tests) read one
 * place instead of sets of code strings kept in several files.
 */
import { AGENT_ERRORS, type AgentErrorSpec } from './errors.js';

/**
 * - transient: the cause may go away (no broker, full disk, a crash of ours, a damaged slot): the same
 *   assignment delivered again (after a reconnect, at boot) resumes the install; staged chunks are kept.
 * - permanent: the bytes or the model are wrong for this device: the bundle is refused here for good
 *   (agent/refused.ts), so a hub that re-signs it cannot make the device fetch and fail in a loop.
 * - corrupt-chunks: chunks arrived that fail their signed hashes: the install stops, but the chunks that
 *   did hash right stay staged for the next assignment of the bundle.
 * - security: someone may be attacking the device (bad signature, replay, wrong device): reported as a
 *   `security` event, not as an ordinary refusal.
 * - rejected: anything else (the default for a code that names no class): the install stops, its staging
 *   is removed, nothing is retried until a new assignment comes.
 */
export const FAILURE_CLASSES = ['transient', 'permanent', 'corrupt-chunks', 'security', 'rejected'] as const;
export type FailureClass = (typeof FAILURE_CLASSES)[number];

export interface FailureHandling {
  /** The same assignment delivered again resumes the install. */
  readonly retryOnRedelivery: boolean;
  /** The bundle is refused on this device for good. */
  readonly refuseBundle: boolean;
  /** Staged chunks stay on disk (they are hash-valid, so the next attempt does not fetch them again). */
  readonly keepStaging: boolean;
  /** The event sent when an assignment is refused before any install work. */
  readonly rejectEvent: 'security' | 'assignment-rejected';
}

export const FAILURE_HANDLING: Readonly<Record<FailureClass, FailureHandling>> = Object.freeze({
  transient: { retryOnRedelivery: true, refuseBundle: false, keepStaging: true, rejectEvent: 'assignment-rejected' },
  permanent: { retryOnRedelivery: false, refuseBundle: true, keepStaging: false, rejectEvent: 'assignment-rejected' },
  'corrupt-chunks': { retryOnRedelivery: false, refuseBundle: false, keepStaging: true, rejectEvent: 'assignment-rejected' },
  security: { retryOnRedelivery: false, refuseBundle: false, keepStaging: false, rejectEvent: 'security' },
  rejected: { retryOnRedelivery: false, refuseBundle: false, keepStaging: false, rejectEvent: 'assignment-rejected' },
});

/** The failure class of any code (codes of other rooms, and agent codes that name none, are `rejected`). */
export function failureClass(code: string): FailureClass {
  const table: Readonly<Record<string, AgentErrorSpec>> = AGENT_ERRORS;
  return (Object.hasOwn(table, code) ? table[code].failure : undefined) ?? 'rejected';
}

export function failureHandling(code: string): FailureHandling {
  return FAILURE_HANDLING[failureClass(code)];
}
