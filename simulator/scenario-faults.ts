/**
 * A scenario's faults on the run's clock: each switches its groups' relay
 * (link-proxy.ts: network loss, broker restart, slow and flapping links,
 * tampered chunks), NaN outputs, clock skew, power or disk space, and is
 * recorded as a band for the report.
 */
import { errorCode } from '@fleetcast/protocol/errors.js';
import type { MemoryStorage } from '@fleetcast/agent/memory-storage.js';
import type { FaultBand, RunRecord } from './run-record.js';
import type { DeviceGroup } from './scenario-devices.js';
import type { FaultSpec } from './scenario-file.js';

export type Timed = { at: number; run: () => Promise<void> | void };

export function faultEvents(f: FaultSpec, groups: DeviceGroup[], ms: (s: number) => number, rec: RunRecord, active: Set<string>, now: () => number, say: (s: string) => void): Timed[] {
  const hit = groups.filter((g) => f.kind === 'broker-restart' || f.group === undefined || g.spec.name === f.group);
  const label = `${f.kind}${f.group ? ` ${f.group}` : ''}`;
  const from = ms(f.at);
  const to = f.for === undefined ? Infinity : from + ms(f.for);
  let flap: NodeJS.Timeout | null = null;
  /** disk-full: each device's capacity before the fault, restored when it ends. */
  const capacity = new Map<MemoryStorage, number>();
  const band: FaultBand = { kind: f.kind, group: f.group ?? null, from, to: Number.isFinite(to) ? to : ms(86_400) };
  const set = (on: boolean) => {
    if (f.kind === 'power-loss') { void powerLoss(hit, on, band, say); return; }
    for (const g of hit) {
      switch (f.kind) {
        case 'network-loss': case 'broker-restart': g.proxy!.setDown(on); break;
        case 'slow-link': g.proxy!.setRate(on ? f.bytesPerSecond! : null); break;
        case 'tampered-chunks': g.proxy!.setTamper(on); break;
        case 'nan-outputs': g.nan!.on = on; break;
        case 'clock-skew': g.skew!.ms = on ? f.skewSeconds! * 1000 : 0; break;
        case 'disk-full':
          // Full: what is stored stays readable, but the next byte written past it fails with ENOSPC (the
          // agent's AGENT_ERR_DISK_SPACE); the installed model keeps serving from memory.
          for (const d of g.disks!) {
            if (on) { if (!capacity.has(d)) capacity.set(d, d.capacityBytes); d.capacityBytes = d.usedBytes; }
            else { d.capacityBytes = capacity.get(d) ?? d.capacityBytes; capacity.delete(d); }
          }
          break;
        case 'flapping-link': {
          if (flap) { clearInterval(flap); flap = null; }
          g.proxy!.setDown(false);
          if (on) { let down = false; flap = setInterval(() => { down = !down; for (const h of hit) h.proxy!.setDown(down); }, ms(f.period!) / 2); }
          break;
        }
      }
    }
  };
  const out: Timed[] = [{ at: from, run: () => { set(true); active.add(label); band.from = now(); rec.faults.push(band); say(`fault: ${label} begins`); } }];
  if (Number.isFinite(to)) out.push({ at: to, run: () => { set(false); active.delete(label); band.to = now(); say(`fault: ${label} ends`); } });
  return out;
}

/**
 * Power loss: every agent of the group stops where it is (an install in flight is abandoned, memory is
 * lost) and, when the power returns, starts again from its own data folder: the recovery table decides
 * from the persisted phase. (An abrupt kill of a real agent process is what test/crash covers.)
 */
async function powerLoss(groups: DeviceGroup[], off: boolean, band: FaultBand, say: (s: string) => void): Promise<void> {
  const agents = groups.flatMap((g) => g.fleet.agents);
  if (off) {
    band.phases = {};
    for (const a of agents) { const p = a.status().phase; band.phases[p] = (band.phases[p] ?? 0) + 1; }
    say(`power lost on ${agents.length} devices in phases ${JSON.stringify(band.phases)}`);
    await Promise.all(agents.map((a) => a.stop()));
  } else {
    await Promise.all(agents.map((a) => a.start().catch((e) => say(`a device did not start again after the power loss: ${errorCode(e)} ${(e as Error).message}`))));
  }
}
