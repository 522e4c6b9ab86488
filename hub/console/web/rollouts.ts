/**
 * Rollouts: the list, and one rollout with each ring's progress, every gate's
 * value against its threshold, the decision timeline, and the operator's
 * actions. The buttons follow the token's role and the rollout's state; the
 * API decides again on every call (an auditor who forces one gets 403).
 */
import { api, ApiError } from './api.js';
import type { Ctx } from './app.js';
import { duration, fill, fixed, h, link, table, time } from './dom.js';

interface Gates {
  verdict: 'pass' | 'fail' | 'wait'; failed: string[]; waitingOn: string[];
  members: number; installed: number; failedInstalls: number; timedOut: number; installSuccess: number | null;
  requests: number; errors: number; errorRate: number | null; latencyRatio: number | null; drift: number | null; soakedMs: number;
  thresholds: { minDevices: number; minInstallSuccess: number; maxErrorRate: number; maxLatencyRatio: number; maxDrift: number | null; minRequests: number; soakMs: number };
}
interface Ring { name: string; index: number; devices: number; counts: Record<string, number>; gates: Gates | null }
interface Rollout {
  id: string; name: string; version: number; state: string; ring: string; ringIndex: number; ringStartedAt: number | null; awaitingPromotion: boolean;
  autoPromote: boolean; window: string | null; onFailure: string; createdAt: number; createdBy: string; updatedAt: number; rings: Ring[];
  skipped: { deviceId: string; ring: string; reason: string }[];
}
interface Decision { seq: number; kind: string; actor: string; at: number; reason: string; ring: string | null }

export function rolloutsPage(root: HTMLElement) {
  const list = h('div', { id: 'rollouts' });
  fill(root, h('h1', {}, 'Rollouts'), list);
  return async () => {
    const r = await api.get<{ rollouts: Rollout[] }>('/v1/rollouts');
    fill(list, r.rollouts.length === 0 ? h('p', { class: 'muted' }, 'No rollout yet (start one with fleetcast rollout start).') :
      table(['Rollout', 'Model', 'State', 'Ring', 'Progress', 'Started by', 'Updated'], r.rollouts.map((o) => [
        link(`rollout/${o.id}`, o.id), `${o.name}@${o.version}`, h('span', { class: `state-${o.state}` }, o.state + (o.awaitingPromotion ? ' (awaiting promotion)' : '')),
        `${o.ring} (${o.ringIndex + 1} of ${o.rings.length})`, `${installed(o)} of ${o.rings.reduce((a, g) => a + g.devices, 0)} installed`, o.createdBy, time(o.updatedAt),
      ]), { id: 'rollout-table' }));
  };
}

const installed = (o: Rollout) => o.rings.reduce((a, g) => a + (g.counts.installed ?? 0), 0);

/** Which actions the rollout's state allows (the engine's rules, hub/rollouts/rollouts.ts act). */
function allowed(o: Rollout): string[] {
  const a: string[] = [];
  if (o.state === 'running') a.push('pause');
  if (o.state === 'paused') a.push('resume');
  if ((o.state === 'running' || o.state === 'paused') && o.ringIndex < o.rings.length - 1) a.push('promote');
  if (o.state === 'running' || o.state === 'paused' || o.state === 'halted') a.push('abort');
  if (!['rolling-back', 'rolled-back', 'superseded'].includes(o.state)) a.push('rollback');
  return a;
}

const WHAT: Record<string, string> = {
  pause: 'Pause: no more devices get the new version until it is resumed.',
  resume: 'Resume: the rollout continues where it paused.',
  promote: 'Promote: the next ring starts getting the new version now, whatever its gates say.',
  abort: 'Abort: the rollout stops; devices keep what they run.',
  rollback: 'Roll back: every device of this rollout is assigned its previous version again.',
};

function gateRows(g: Gates): (string | HTMLElement)[][] {
  const t = g.thresholds;
  const mark = (name: string) => h('span', { class: g.failed.includes(name) ? 'fail' : g.waitingOn.includes(name) ? 'wait' : 'pass' }, g.failed.includes(name) ? 'fail' : g.waitingOn.includes(name) ? 'waiting' : 'ok');
  return [
    ['Installs', `${g.installed} of ${g.members}`, `≥ ${t.minDevices} installed`, mark(g.waitingOn.includes('installs') ? 'installs' : 'minDevices')],
    ['Install success', fixed(g.installSuccess), `≥ ${t.minInstallSuccess}`, mark('installSuccess')],
    ['Requests', `${g.requests}/${t.minRequests}`, `≥ ${t.minRequests}`, mark('minRequests')],
    ['Soak', `${duration(g.soakedMs)} of ${duration(t.soakMs)}`, duration(t.soakMs), mark('soak')],
    ['Error rate', fixed(g.errorRate, 4), `≤ ${t.maxErrorRate}`, mark('errorRate')],
    ['Latency ratio', fixed(g.latencyRatio, 2), `≤ ${t.maxLatencyRatio}`, mark('latencyRatio')],
    ['Drift', fixed(g.drift, 2), t.maxDrift === null ? 'off' : `≤ ${t.maxDrift}`, mark('drift')],
  ];
}

export function rolloutPage(root: HTMLElement, ctx: Ctx, args: string[]) {
  const id = args[0] ?? '';
  const facts = h('div', { id: 'rollout-facts' });
  const actions = h('div', { class: 'actions', id: 'rollout-actions' });
  const result = h('p', { id: 'action-result', role: 'status' });
  const rings = h('div', { id: 'rings' });
  const timeline = h('ol', { class: 'timeline', id: 'timeline' });
  fill(root, h('p', {}, link('rollouts', '← Rollouts')), h('h1', {}, `Rollout ${id}`), facts, actions, result, h('h2', {}, 'Rings'), rings, h('h2', {}, 'Decisions'), timeline);
  let shown = '';

  const act = async (action: string, update: () => Promise<void>) => {
    const reason = await ctx.confirm(WHAT[action] ?? action, action[0].toUpperCase() + action.slice(1));
    if (reason === null) { result.textContent = `${action} cancelled`; return; }
    try {
      const st = await api.post<Rollout>(`/v1/rollouts/${encodeURIComponent(id)}/${action}`, reason ? { reason } : {});
      result.textContent = `${action}: the rollout is ${st.state}`;
      result.className = 'ok';
    } catch (e) {
      result.textContent = e instanceof ApiError ? `${action} refused: ${e.code}: ${e.message}` : String(e);
      result.className = 'error';
    }
    await update();
  };

  const update = async (): Promise<void> => {
    const [o, hist] = await Promise.all([
      api.get<Rollout>(`/v1/rollouts/${encodeURIComponent(id)}`),
      api.get<{ decisions: Decision[] }>(`/v1/rollouts/${encodeURIComponent(id)}/history`),
    ]);
    fill(facts, table(['', ''], [
      ['Model', `${o.name}@${o.version}`], ['State', h('strong', { id: 'rollout-state' }, o.state + (o.awaitingPromotion ? ' (awaiting promotion)' : ''))],
      ['Current ring', `${o.ring} (${o.ringIndex + 1} of ${o.rings.length}), since ${time(o.ringStartedAt)}`],
      ['Promotion', o.autoPromote ? 'automatic when gates pass' : 'by an operator'], ['On failure', o.onFailure], ['Window', o.window ?? 'any time'],
      ['Started', `${time(o.createdAt)} by ${o.createdBy}`],
    ]));
    // Only an operator or admin gets buttons; rebuilt only when what is allowed changes, so focus stays put.
    const can = ctx.who.role === 'auditor' ? [] : allowed(o);
    if (can.join() !== shown) {
      shown = can.join();
      fill(actions, ...can.map((a) => h('button', { type: 'button', id: `action-${a}`, class: a === 'rollback' || a === 'abort' ? 'danger' : undefined, onclick: () => void act(a, update) }, a[0].toUpperCase() + a.slice(1))));
    }
    fill(rings, ...o.rings.map((r) => {
      const done = r.counts.installed ?? 0;
      return h('section', { class: 'card', id: `ring-${r.index}`, 'aria-label': `Ring ${r.name}` },
        h('h3', {}, `${r.name}: ${done} of ${r.devices} installed`, r.gates ? h('span', { class: r.gates.verdict }, ` · last gate verdict: ${r.gates.verdict}`) : ''),
        h('progress', { max: Math.max(r.devices, 1), value: done, 'aria-label': `${r.name} progress` }),
        h('p', { class: 'muted' }, Object.entries(r.counts).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(' · ') || 'no devices'),
        r.gates ? table(['Gate', 'Value', 'Threshold', 'Status'], gateRows(r.gates), { id: `gates-${r.index}` }) : h('p', { class: 'muted' }, 'Not judged yet.'));
    }));
    fill(timeline, ...hist.decisions.map((d) => h('li', {}, h('strong', {}, d.kind), ` ${time(d.at)} by `, h('span', { class: 'mono' }, d.actor), d.ring ? ` in ${d.ring}` : '', `: ${d.reason}`)));
  };
  return update;
}
