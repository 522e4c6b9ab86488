/**
 * What `fleetcast sim` shows while it runs: on a terminal, a display redrawn
 * in place every second (devices per version and phase, installs, predictions
 * and failures per second, connections, faults active); otherwise one quiet
 * line per sample, or one JSON object per sample with --json, for a log or CI.
 * A broker that went away shows as "0/N connected" with BROKER GONE, never as
 * a fleet that silently serves nothing.
 */
import type { RunRecord, Sample } from './run-record.js';

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

function totals(s: Sample): { versions: Record<string, number>; ok: number; failed: number } {
  const versions: Record<string, number> = {};
  for (const g of Object.values(s.versions)) for (const [k, v] of Object.entries(g)) versions[k] = (versions[k] ?? 0) + v;
  return { versions, ok: sum(s.ok), failed: sum(s.failed) };
}

const perSecond = (n: number, dt: number) => (n / Math.max(dt, 0.001)).toFixed(0);

export function liveLine(s: Sample, r: RunRecord): string {
  const t = totals(s);
  const broker = s.connected === 0 ? ' BROKER GONE' : '';
  const faults = s.faults.length ? ` faults: ${s.faults.join(', ')}` : '';
  return `sim ${(s.t / 1000).toFixed(0)}s: ${Object.entries(t.versions).map(([k, v]) => `${k} ${v}`).join(', ')}; connected ${s.connected}/${s.total}${broker}; installs ${r.installs.length}; predictions ${perSecond(t.ok, s.dt)}/s failed ${perSecond(t.failed, s.dt)}/s${faults}`;
}

export function liveJson(s: Sample, r: RunRecord): string {
  return JSON.stringify({ ...s, installs: r.installs.length, installFailures: r.installFailures.length, brokerGone: s.connected === 0 });
}

/** The terminal display: clear and redraw (ANSI), one block per sample. */
export function liveScreen(s: Sample, r: RunRecord): string {
  const t = totals(s);
  const lines = [
    `fleetcast sim: ${r.scenario}   ${(s.t / 1000).toFixed(0)} s of ${(r.durationMs / 1000).toFixed(0)} s   (Ctrl-C stops with the summary)`,
    '',
    `broker     ${s.connected}/${s.total} devices connected${s.connected === 0 ? '   \x1b[31mBROKER GONE\x1b[0m' : ''}`,
    `versions   ${Object.entries(t.versions).map(([k, v]) => `${k}: ${v}`).join('   ')}`,
    `phases     ${Object.entries(s.phases).map(([k, v]) => `${k}: ${v}`).join('   ')}`,
    `installs   ${r.installs.length} done, ${r.installFailures.length} refused or failed`,
    `predict    ${perSecond(t.ok, s.dt)}/s ok, ${perSecond(t.failed, s.dt)}/s failed (total ${r.totals.ok} ok, ${r.totals.failed} failed)`,
    ...Object.keys(s.versions).map((g) => `  ${g.padEnd(12)} ${perSecond(s.ok[g] ?? 0, s.dt)}/s ok ${perSecond(s.failed[g] ?? 0, s.dt)}/s failed`),
    `faults     ${s.faults.length ? s.faults.join(', ') : 'none'}`,
    `rollouts   ${r.rollouts.map((ro) => `${ro.id}: ${ro.final ? `${ro.final.state} (${ro.final.ring})` : 'starting'}`).join('   ') || 'none'}`,
  ];
  return `\x1b[H\x1b[2J${lines.join('\n')}\n`;
}

/** The closing summary: totals, then each expectation with its verdict. */
export function summary(r: RunRecord): string {
  const out = [
    `sim: ${r.scenario} ${r.interrupted ? 'interrupted' : 'done'} after ${((r.samples[r.samples.length - 1]?.t ?? 0) / 1000).toFixed(1)} s; predictions ok ${r.totals.ok} failed ${r.totals.failed}; installs ${r.installs.length}, refused or failed ${r.installFailures.length}`,
  ];
  for (const [g, c] of Object.entries(r.totals.failuresByGroup)) if (Object.keys(c).length) out.push(`  failures in ${g}: ${JSON.stringify(c)}`);
  for (const o of r.brokerOutages) out.push(`  broker gone (no device connected) from ${(o.from / 1000).toFixed(0)} s to ${(o.to / 1000).toFixed(0)} s`);
  for (const [g, l] of Object.entries(r.links)) out.push(`  link of ${g}: ${l.connections} connections, ${l.refused} refused while down, ${l.tampered} chunks tampered`);
  for (const a of r.actions) if (!a.ok) out.push(`  action failed: ${a.what}: ${a.error}`);
  for (const e of r.expectations) out.push(`  ${e.met ? 'met    ' : 'NOT MET'}  ${e.label}: ${e.detail}`);
  return `${out.join('\n')}\n`;
}
