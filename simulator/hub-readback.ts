/**
 * What the simulator reads back from the hub: whether it knows every
 * simulated device yet, each rollout's state and decisions, and the drift
 * report and alerts of the models the scenario touched.
 */
import { errorCode } from '@fleetcast/protocol/errors.js';
import type { DriftRecord, RunRecord } from './run-record.js';
import type { DeviceGroup, HubApi } from './scenario-devices.js';
import type { ScenarioFile } from './scenario-file.js';
import { splitModel } from './scenario-actions.js';

/**
 * Until the hub has heard from every simulated device (its first state report), or 15 s: a rollout's percent
 * rings are cut from the devices the hub knows, and a fault at time 0 must not hide a device from them.
 */
export async function waitKnown(api: HubApi, groups: DeviceGroup[], say: (s: string) => void): Promise<void> {
  const want = new Set(groups.flatMap((g) => g.ids));
  const end = Date.now() + 15_000;
  let known = 0;
  for (;;) {
    try {
      const { devices } = await api.get<{ devices: { id: string }[] }>('/v1/devices');
      known = devices.filter((d) => want.has(d.id)).length;
    } catch { /* without the API (no --hub) nothing can be checked */ return; }
    if (known === want.size) return;
    if (Date.now() > end) { say(`the hub knows ${known} of ${want.size} devices after 15 s; starting anyway`); return; }
    await new Promise((r) => setTimeout(r, want.size > 1000 ? 1000 : 200)); // the list is one row per device
  }
}

export async function pollRolloutStates(api: HubApi, rec: RunRecord, now: () => number): Promise<void> {
  await Promise.all(rec.rollouts.filter((r) => r.hubId).map(async (r) => {
    try {
      const s = await api.rollout<{ state: string; ring: string }>(r.hubId!);
      const prev = r.states[r.states.length - 1];
      if (!prev || prev.state !== s.state || prev.ring !== s.ring) r.states.push({ t: now(), state: s.state, ring: s.ring });
      r.final = { state: s.state, ring: s.ring };
    } catch { /* the hub may be gone for a moment: the next poll tries again, the report shows the gap */ }
  }));
}

export async function readDecisions(api: HubApi, rec: RunRecord, t0: number): Promise<void> {
  for (const r of rec.rollouts) {
    if (!r.hubId) continue;
    try {
      const h = await api.rolloutHistory<{ decisions: { at: number; kind: string; ring: string | null; reason: string }[] }>(r.hubId);
      r.decisions = h.decisions.map((d) => ({ t: d.at - t0, kind: d.kind, ring: d.ring, reason: d.reason }));
    } catch { /* left empty: the report says no decisions were read */ }
  }
}

/** The hub's drift report (and alert events) of every model a drift expectation or a rollout names, over the run. */
export async function readDrift(api: HubApi, s: ScenarioFile, rec: RunRecord, t0: number): Promise<DriftRecord[]> {
  const models = new Set<string>([...(s.expect ?? []).flatMap((e) => (e.drift ? [e.drift.model] : [])), ...rec.rollouts.map((r) => r.model)]);
  const out: DriftRecord[] = [];
  for (const model of models) {
    const { name, version } = splitModel(model);
    const d: DriftRecord = { model, flagged: [], events: [] };
    try {
      const rep = await api.get<{ bundleId: string; rows: { ring: string; feature: string; verdict: string; psi: number | null; newCategories: string[]; missingRate: number }[] }>(`/v1/drift/${name}/${version}?since=${t0}`);
      d.flagged = rep.rows.filter((r) => r.verdict === 'drift').map((r) => ({ ring: r.ring, feature: r.feature, psi: r.psi, newCategories: r.newCategories, missingRate: r.missingRate }));
      const ev = await api.get<{ events: { at: number; ring: string; feature: string; metric: string; value: number; state: string }[] }>(`/v1/drift-events?bundleId=${rep.bundleId}`);
      d.events = ev.events.filter((e) => e.at >= t0).map((e) => ({ t: e.at - t0, text: `${e.state} ${e.feature} in ${e.ring} (${e.metric} ${e.value.toFixed(3)})` })).reverse();
    } catch (e) { d.error = `${errorCode(e)}: ${(e as Error).message}`; }
    out.push(d);
  }
  return out;
}
