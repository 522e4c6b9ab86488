/**
 * Text views of a rollout for the CLI: a status block with a progress bar per
 * ring, and the decision history. Pure functions of the API's JSON, so `watch`
 * can redraw them in place.
 */
import type { RolloutStatus } from '../hub/rollouts/rollouts.js';
import type { DecisionRecord } from '../hub/rollouts/decisions.js';

const BAR = 20;

function bar(done: number, total: number): string {
  if (total === 0) return `[${'·'.repeat(BAR)}]`;
  const n = Math.round((done / total) * BAR);
  return `[${'#'.repeat(n)}${'-'.repeat(BAR - n)}]`;
}

const pct = (x: unknown) => (typeof x === 'number' ? `${(x * 100).toFixed(x < 0.01 && x > 0 ? 2 : 1)}%` : '-');

export function renderStatus(s: RolloutStatus): string {
  const head = `${s.id}  ${s.name}@${s.version}  ${s.state.toUpperCase()}  ring ${s.ring} (${s.ringIndex + 1}/${s.rings.length})${s.awaitingPromotion ? '  awaiting `rollout promote`' : ''}${s.window ? `  window "${s.window}"` : ''}`;
  const width = Math.max(...s.rings.map((r) => r.name.length));
  const lines = s.rings.map((r) => {
    const c = r.counts;
    const done = (c.installed ?? 0) + (c.skipped ?? 0);
    const g = r.gates as { verdict?: string; failed?: string[]; waitingOn?: string[]; errorRate?: number | null; p95Ms?: number | null; requests?: number } | null;
    const gate = !g ? '' : g.verdict === 'fail' ? `  FAILED ${g.failed?.join(', ')}` : g.verdict === 'wait' ? `  waiting on ${g.waitingOn?.join(', ')}` : '  gates passed';
    const health = g && g.requests ? `  req ${g.requests} err ${pct(g.errorRate)} p95 ${g.p95Ms?.toFixed(2) ?? '-'} ms` : '';
    const counts = ['installed', 'pending', 'waiting', 'failed', 'timed-out', 'skipped', 'rolled-back'].filter((k) => (c[k] ?? 0) > 0).map((k) => `${k} ${c[k]}`).join(', ');
    return `  ${r.name.padEnd(width)}  ${bar(done, r.devices)} ${String(done).padStart(4)}/${String(r.devices).padEnd(4)} ${counts || 'no devices'}${gate}${health}`;
  });
  const skipped = s.skipped.slice(0, 5).map((k) => `  skipped ${k.deviceId} (${k.ring}): ${k.reason}`);
  if (s.skipped.length > 5) skipped.push(`  … and ${s.skipped.length - 5} more skipped`);
  return [head, ...lines, ...skipped].join('\n') + '\n';
}

export function renderHistory(ds: readonly DecisionRecord[]): string {
  return ds.map((d) => {
    const g = d.gates as { failed?: string[]; errorRate?: number | null; installSuccess?: number | null; latencyRatio?: number | null } | null;
    const facts = g && ('failed' in g || 'errorRate' in g)
      ? `  [install ${pct(g.installSuccess)}, errors ${pct(g.errorRate)}, p95 ×${g.latencyRatio?.toFixed(2) ?? '-'}${g.failed?.length ? `, failed: ${g.failed.join(', ')}` : ''}]`
      : '';
    return `${String(d.seq).padStart(3)}  ${new Date(d.at).toISOString()}  ${d.kind.padEnd(9)} ${(d.ring ?? '-').padEnd(8)} ${d.actor}  ${d.reason}${facts}`;
  }).join('\n') + '\n';
}

export const TERMINAL = new Set(['completed', 'aborted', 'rolled-back', 'halted', 'superseded']);
