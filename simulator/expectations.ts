/**
 * A scenario's expectations, judged at the end of the run from what the
 * hub answered (rollout states, the drift report) and what the devices did
 * (predictions per group, what each serves). Each gives a verdict with the
 * facts behind it, so a failed rehearsal says what happened instead.
 */
import type { ExpectSpec, ScenarioFile } from './scenario-file.js';
import type { DeviceGroup } from './scenario-devices.js';
import type { RunRecord, Verdict } from './run-record.js';

function describe(e: ExpectSpec): string {
  if (e.rollout !== undefined) return e.haltedIn !== undefined ? `rollout ${e.rollout} halted in ${e.haltedIn}` : `rollout ${e.rollout} ${e.state}`;
  if (e.drift) return `drift flagged on ${e.drift.feature} of ${e.drift.model} in ${e.drift.flaggedIn.join(', ')}${e.drift.only === false ? '' : ' only'}`;
  if (e.noFailuresOutside) return e.noFailuresOutside.length ? `no prediction failed outside ${e.noFailuresOutside.join(', ')}` : 'no prediction failed';
  if (e.allOn !== undefined) return `every device${e.group ? ` of ${e.group}` : ''} serves ${e.allOn}`;
  if (e.refused !== undefined) return `a device${e.group ? ` of ${e.group}` : ''} refused with ${e.refused}`;
  return `at least ${e.minPredictions} predictions served`;
}

function judge(e: ExpectSpec, rec: RunRecord, groups: DeviceGroup[]): { met: boolean; detail: string } {
  if (e.rollout !== undefined) {
    const r = rec.rollouts.find((x) => x.id === e.rollout);
    if (!r?.hubId) return { met: false, detail: 'the rollout was never started (see the actions)' };
    const f = r.final;
    if (!f) return { met: false, detail: 'the hub never answered its status' };
    const met = e.haltedIn !== undefined ? f.state === 'halted' && f.ring === e.haltedIn : f.state === e.state;
    return { met, detail: `${f.state} in ring ${f.ring}` };
  }
  if (e.drift) {
    const d = rec.drift.find((x) => x.model === e.drift!.model);
    if (!d || d.error) return { met: false, detail: `no drift report: ${d?.error ?? 'not read'}` };
    const rings = [...new Set(d.flagged.filter((r) => r.feature === e.drift!.feature).map((r) => r.ring))].sort();
    const want = [...e.drift.flaggedIn].sort();
    const met = e.drift.only === false ? want.every((w) => rings.includes(w)) : rings.length === want.length && want.every((w, i) => rings[i] === w);
    return { met, detail: rings.length ? `flagged in ${rings.join(', ')}` : 'flagged in no ring' };
  }
  if (e.noFailuresOutside) {
    const bad = Object.entries(rec.totals.failuresByGroup).filter(([g, c]) => !e.noFailuresOutside!.includes(g) && Object.keys(c).length > 0);
    return { met: bad.length === 0, detail: bad.length ? bad.map(([g, c]) => `${g}: ${JSON.stringify(c)}`).join('; ') : `${rec.totals.failed} failed, all inside ${e.noFailuresOutside.join(', ') || '(none)'}` };
  }
  if (e.allOn !== undefined) {
    const last = rec.samples[rec.samples.length - 1];
    const names = e.group ? [e.group] : groups.map((g) => g.spec.name);
    const off = names.flatMap((n) => Object.entries(last?.versions[n] ?? {}).filter(([v]) => v !== e.allOn).map(([v, c]) => `${c} of ${n} on ${v}`));
    return { met: !!last && off.length === 0, detail: off.length ? off.join(', ') : `all on ${e.allOn}` };
  }
  if (e.refused !== undefined) {
    const mine = rec.installFailures.filter((f) => e.group === undefined || f.group === e.group);
    const codes = [...new Set(mine.map((f) => f.code))];
    return { met: codes.includes(e.refused), detail: codes.length ? `refused with ${codes.join(', ')}` : 'no refusal' };
  }
  return { met: rec.totals.ok >= e.minPredictions!, detail: `${rec.totals.ok} served` };
}

export function judgeExpectations(s: ScenarioFile, rec: RunRecord, groups: DeviceGroup[]): Verdict[] {
  return (s.expect ?? []).map((e) => ({ label: e.label ?? describe(e), ...judge(e, rec, groups) }));
}
