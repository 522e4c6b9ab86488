/**
 * Ring membership. Explicit rings (device ids, or tags the device reports in
 * capabilities.tags) take the devices they name, first ring first. The other
 * devices are ordered by a stable hash of (rollout id, device id) and cut at
 * the cumulative percentages, so ring sizes are exact (ceil) and the same
 * device lands in the same ring every time the same rollout is evaluated; a
 * canary ring with a percentage above 0 holds at least one device.
 * A device first seen after the start joins by comparing its hash with the
 * percentages (no re-ranking, so nobody already placed moves).
 */
import { createHash } from 'node:crypto';
import type { RingPlan } from './spec.js';

export interface Candidate { id: string; capabilities: Record<string, unknown> }

/** A stable number in [0, 1) for a device within a rollout. */
export function ringHash(rolloutId: string, deviceId: string): number {
  const h = createHash('sha256').update(rolloutId).update('\0').update(deviceId).digest();
  return h.readUIntBE(0, 6) / 2 ** 48;
}

/** A device's tags, from capabilities.tags in its state report (a string or a list of strings). */
export function tagsOf(c: Pick<Candidate, 'capabilities'>): string[] {
  const t = c.capabilities.tags;
  return Array.isArray(t) ? t.filter((x): x is string => typeof x === 'string') : typeof t === 'string' ? [t] : [];
}

function explicitRing(rings: readonly RingPlan[], c: Candidate): number {
  const tags = tagsOf(c);
  return rings.findIndex((r) => (r.devices !== null && r.devices.includes(c.id)) || (r.tags !== null && r.tags.every((t) => tags.includes(t))));
}

/** Ring index per device (devices beyond the last percentage are left out). */
export function placeDevices(rolloutId: string, rings: readonly RingPlan[], devices: readonly Candidate[]): Map<string, number> {
  const out = new Map<string, number>();
  const rest: { id: string; h: number }[] = [];
  for (const c of devices) {
    const i = explicitRing(rings, c);
    if (i >= 0) out.set(c.id, i);
    else rest.push({ id: c.id, h: ringHash(rolloutId, c.id) });
  }
  rest.sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : 1));
  const n = rest.length;
  let rank = 0;
  rings.forEach((r, i) => {
    if (r.percent === null) return;
    let upTo = Math.ceil((r.percent / 100) * n - 1e-9);
    if (r.percent > 0) upTo = Math.max(upTo, Math.min(n, rank + 1));
    for (; rank < upTo; rank++) out.set(rest[rank].id, i);
  });
  return out;
}

/** The ring of a device that appeared after the rollout started, or -1 when none takes it. */
export function placeLateDevice(rolloutId: string, rings: readonly RingPlan[], c: Candidate): number {
  const i = explicitRing(rings, c);
  if (i >= 0) return i;
  const h = ringHash(rolloutId, c.id) * 100;
  return rings.findIndex((r) => r.percent !== null && h < r.percent);
}
