/**
 * How long an agent waits before its next connection attempt. Capped
 * exponential backoff with "equal jitter" (half the step fixed, half random):
 * the fixed half makes the waits grow with every failure, the random half
 * spreads a fleet that lost its broker at the same instant, so a broker or hub
 * restart is not met by every device at once. A refused login (wrong or
 * revoked credential) retries on its own, slower schedule: it will not fix
 * itself within a second, but an operator who re-enrols the device should not
 * have to restart it either.
 */
export interface BackoffSchedule { firstMs: number; maxMs: number }

export type FailureKind = 'auth' | 'network';

/** The wait before attempt `failures + 1`, after `failures` (≥ 1) consecutive failures. */
export function backoffDelay(failures: number, s: BackoffSchedule, random: () => number = Math.random): number {
  const step = Math.min(s.maxMs, s.firstMs * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return Math.round(step / 2 + random() * (step / 2));
}
