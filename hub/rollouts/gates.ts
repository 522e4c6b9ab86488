/**
 * Judging one ring (issue #3 "Gates"), as a pure function of what devices
 * reported: install success, predict error rate (NaN/Infinity outputs count as
 * errors), p95 latency against the previous bundle on the same devices, drift,
 * requests served, devices installed, and soak time. A gate that can no longer
 * pass fails at once (a bad canary halts before its soak ends); the ring passes
 * only when every gate holds.
 */
import type { DeviceHealth, DriftReading } from './gate-inputs.js';
import type { MemberRow } from './rollout-store.js';
import type { Gates } from './spec.js';

export type Verdict = 'pass' | 'fail' | 'wait';

export interface GateValues {
  verdict: Verdict;
  /** Gates that failed (fail) or are still open (wait). */
  failed: string[];
  waitingOn: string[];
  members: number;
  skipped: number;
  waiting: number;
  pending: number;
  installed: number;
  failedInstalls: number;
  timedOut: number;
  installSuccess: number | null;
  requests: number;
  errors: number;
  errorRate: number | null;
  p95Ms: number | null;
  baselineP95Ms: number | null;
  latencyRatio: number | null;
  drift: number | null;
  soakedMs: number;
  thresholds: Gates;
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function judgeRing(input: { members: readonly MemberRow[]; health: readonly DeviceHealth[]; drift: DriftReading; gates: Gates; now: number }): GateValues {
  const { gates: g, now } = input;
  const count = (s: MemberRow['status']) => input.members.filter((m) => m.status === s).length;
  const skipped = count('skipped');
  const eligible = input.members.length - skipped;
  const installed = count('installed');
  const failedInstalls = count('failed');
  const timedOut = count('timed-out');
  const waiting = count('waiting') + count('assigning');
  const pending = count('assigned');
  const judged = installed + failedInstalls + timedOut;
  const installSuccess = judged > 0 ? installed / judged : null;
  const requests = input.health.reduce((a, h) => a + h.requests, 0);
  const errors = input.health.reduce((a, h) => a + h.errors, 0);
  const errorRate = requests > 0 ? errors / requests : null;
  const p95Ms = median(input.health.map((h) => h.p95Ms).filter((x): x is number => x !== null));
  const healthIds = new Set(input.health.map((h) => h.deviceId));
  const baselineP95Ms = median(input.members.filter((m) => healthIds.has(m.deviceId) && m.prevP95 !== null).map((m) => m.prevP95!));
  const latencyRatio = p95Ms !== null && baselineP95Ms !== null && baselineP95Ms > 0 ? p95Ms / baselineP95Ms : null;
  const lastDone = input.members.reduce((a, m) => (m.status === 'installed' && m.doneAt !== null ? Math.max(a, m.doneAt) : a), 0);
  const soakedMs = installed > 0 && waiting + pending === 0 ? Math.max(0, now - lastDone) : 0;

  const failed: string[] = [];
  const waitingOn: string[] = [];
  // Install success: fail as soon as the devices that can still succeed cannot lift it above the bar.
  if (eligible > 0) {
    const best = (installed + waiting + pending) / eligible;
    if (best < g.minInstallSuccess) failed.push('installSuccess');
    else if (waiting + pending > 0) waitingOn.push('installs');
    else if (installSuccess !== null && installSuccess < g.minInstallSuccess) failed.push('installSuccess');
    if (installed < Math.min(g.minDevices, eligible)) waitingOn.push('minDevices');
  }
  const enough = requests >= g.minRequests;
  if (eligible > 0 && installed > 0) {
    if (enough && errorRate !== null && errorRate > g.maxErrorRate) failed.push('errorRate');
    if (enough && latencyRatio !== null && latencyRatio > g.maxLatencyRatio) failed.push('latency');
    if (!enough) waitingOn.push('minRequests');
  }
  if (g.maxDrift !== null && input.drift.value !== null && input.drift.value > g.maxDrift) failed.push('drift');
  if (eligible > 0 && soakedMs < g.soakMs) waitingOn.push('soak');

  const verdict: Verdict = failed.length > 0 ? 'fail' : waitingOn.length > 0 ? 'wait' : 'pass';
  return {
    verdict, failed, waitingOn, members: input.members.length, skipped, waiting, pending, installed, failedInstalls, timedOut,
    installSuccess, requests, errors, errorRate, p95Ms, baselineP95Ms, latencyRatio, drift: input.drift.value, soakedMs, thresholds: g,
  };
}
