/**
 * Text views of a rollout for the CLI: a status block with a progress bar per
 * ring, and the decision history. Pure functions of the API's JSON, so `watch`
 * can redraw them in place.
 */
import type { RolloutStatus } from '@fleetcast/hub/rollouts/rollouts.js';
import type { DecisionRecord } from '@fleetcast/hub/rollouts/decisions.js';

const BAR = 20;

function bar(done: number, total: number): string {
  if (total === 0) return `[${'·'.repeat(BAR)}]`;
  const n = Math.round((done / total) * BAR);
  return `[${'#'.repeat(n)}${'-'.repeat(BAR - n)}]`;
}

const pct = (x: unknown) => (typeof x === 'number' ? `${(x * 100).toFixed(x < 0.01 && x > 0 ? 2 : 1)}%` : '-');

/** The last gate judgement of a ring, as the engine stores it (hub/rollouts/gates.ts GateValues). */
interface Gates { verdict?: string; failed?: string[]; waitingOn?: string[]; errorRate?: number | null; p95Ms?: number | null; requests?: number; soakedMs?: number; thresholds?: { soakMs?: number; maxDrift?: number | null } }

/** 1h02m, 7m05s, 42s: short enough for a status line. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h) return `${h}h${String(m).padStart(2, '0')}m`;
  return m ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/**
 * The gates of a ring as `gates 4/6 passed` (the engine judges install success, devices, requests, error rate,
 * latency and soak, plus drift when the rollout sets maxDrift), then what fails or is still open, with the soak
 * time left. A ring behind the current one was promoted, and every ring of a finished rollout is over: their last
 * judgement is history, not something the rollout still waits on.
 */
export function gateText(g: Gates | null, over: string | null): string {
  if (over) return `  ${over}`;
  if (!g) return '';
  const total = 6 + (g.thresholds?.maxDrift != null ? 1 : 0);
  const open = new Set([...(g.failed ?? []), ...(g.waitingOn ?? []).map((w) => (w === 'installs' ? 'installSuccess' : w))]);
  const passed = `gates ${Math.max(0, total - open.size)}/${total} passed`;
  if (g.verdict === 'fail') return `  ${passed}, FAILED ${g.failed?.join(', ')}`;
  if (g.verdict !== 'wait') return `  ${passed}`;
  const soakLeft = g.waitingOn?.includes('soak') && g.thresholds?.soakMs !== undefined && g.soakedMs !== undefined && g.soakedMs > 0 ? ` (soak ${duration(g.thresholds.soakMs - g.soakedMs)} left)` : '';
  return `  ${passed}, waiting on ${g.waitingOn?.join(', ')}${soakLeft}`;
}

function ringOver(s: RolloutStatus, index: number): string | null {
  if (TERMINAL.has(s.state)) return index < s.ringIndex || s.state === 'completed' ? 'done' : index === s.ringIndex ? s.state : 'not started';
  return index < s.ringIndex ? 'done (promoted)' : index > s.ringIndex ? 'not started' : null;
}

/** One line per rollout for `rollout status` without an id: where it is and what it waits on. */
export function renderSummaryLines(list: readonly RolloutStatus[]): string {
  const cells = list.map((s) => {
    const r = s.rings[s.ringIndex];
    const done = r ? (r.counts.installed ?? 0) + (r.counts.skipped ?? 0) : 0;
    const gate = r ? gateText(r.gates as Gates | null, ringOver(s, s.ringIndex)).trim() : '';
    return [s.id, `${s.name}@${s.version}`, s.state, `${s.ring} ${s.ringIndex + 1}/${s.rings.length}`, r ? `${done}/${r.devices}` : '-', s.awaitingPromotion ? 'awaiting `rollout promote`' : (gate || '-')];
  });
  const header = ['ID', 'BUNDLE', 'STATE', 'RING', 'DONE', 'GATES'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  return [header, ...cells].map((c) => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

export function renderStatus(s: RolloutStatus): string {
  const head = `${s.id}  ${s.name}@${s.version}  ${s.state.toUpperCase()}  ring ${s.ring} (${s.ringIndex + 1}/${s.rings.length})${s.awaitingPromotion ? '  awaiting `rollout promote`' : ''}${s.window ? `  window "${s.window}"` : ''}`;
  const width = Math.max(...s.rings.map((r) => r.name.length));
  const lines = s.rings.map((r, i) => {
    const c = r.counts;
    const done = (c.installed ?? 0) + (c.skipped ?? 0);
    const g = r.gates as Gates | null;
    const gate = gateText(g, ringOver(s, i));
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
