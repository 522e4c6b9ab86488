/** Fleet: the overview (by version, ring, phase, online), a filtered and paged device list, and one device's page. */
import { api, qs } from './api.js';
import type { Ctx } from './app.js';
import { fill, fixed, h, link, short, table, time } from './dom.js';

interface Model { bundleId: string; name: string; version: number }
interface Device {
  id: string; active: Model | null; phase: string; lastError: string | null; firstSeen: number; lastSeen: number; online: boolean;
  ring: string | null; tags: string[]; assignment: (Model & { counter: number; expiresAt: number }) | null;
  debug?: { rowsPerWindow: number; until: number } | null;
}
interface Summary { total: number; online: number; byVersion: Record<string, number>; byRing: Record<string, number>; byPhase: Record<string, number> }
export const PAGE_SIZE = 50;

function counts(title: string, m: Record<string, number>, filter: string): HTMLElement {
  return h('div', { class: 'card' }, h('h3', {}, title),
    table([title, 'devices'], Object.entries(m).map(([k, n]) => [k, String(n)]), { numeric: [1], id: `by-${filter}` }));
}

export function fleetPage(root: HTMLElement) {
  const overview = h('div', { class: 'cards', id: 'overview' });
  const field = (name: string, label: string, input: HTMLElement) => h('label', {}, label, input);
  const q = h('input', { name: 'q', type: 'search', placeholder: 'part of the id' });
  const tag = h('input', { name: 'tag', placeholder: 'tag' });
  const version = h('input', { name: 'version', placeholder: 'name@version or none' });
  const ring = h('input', { name: 'ring', placeholder: 'ring or none' });
  const phase = h('input', { name: 'phase', placeholder: 'committed, probation…' });
  const state = h('select', { name: 'state' }, h('option', { value: '' }, 'any'), h('option', { value: 'online' }, 'online'), h('option', { value: 'offline' }, 'offline'));
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter devices' },
    field('q', 'Device id', q), field('tag', 'Tag', tag), field('version', 'Version', version), field('ring', 'Ring', ring), field('phase', 'Phase', phase), field('state', 'State', state),
    h('button', { type: 'submit' }, 'Filter'));
  const info = h('p', { id: 'page-info', 'aria-live': 'polite' });
  const list = h('div', { id: 'devices' });
  // Keyset paging: the cursors of the pages before this one, so Previous needs no offset.
  let cursors: (string | undefined)[] = [undefined];
  let next: string | null = null;
  const prev = h('button', { type: 'button', id: 'prev-page' }, 'Previous page');
  const nextBtn = h('button', { type: 'button', id: 'next-page' }, 'Next page');
  const filters = () => ({ q: q.value.trim(), tag: tag.value.trim(), version: version.value.trim(), ring: ring.value.trim(), phase: phase.value.trim(), state: state.value });
  fill(root, h('h1', {}, 'Fleet'), overview, h('h2', {}, 'Devices'), form, info, list, h('div', { class: 'actions' }, prev, nextBtn));

  const update = async () => {
    const [s, page] = await Promise.all([
      api.get<Summary>('/v1/fleet/summary'),
      api.get<{ devices: Device[]; total: number; next: string | null }>(`/v1/devices${qs({ ...filters(), limit: PAGE_SIZE, after: cursors[cursors.length - 1] })}`),
    ]);
    fill(overview,
      h('div', { class: 'card' }, h('h3', {}, 'Devices'), h('p', { id: 'online-count' }, `${s.total} devices: ${s.online} online, ${s.total - s.online} offline`)),
      counts('Version', s.byVersion, 'version'), counts('Ring', s.byRing, 'ring'), counts('Phase', s.byPhase, 'phase'));
    next = page.next;
    const first = (cursors.length - 1) * PAGE_SIZE;
    info.textContent = page.total === 0 ? 'No device matches.' : `Devices ${first + 1}–${first + page.devices.length} of ${page.total}`;
    prev.disabled = cursors.length === 1;
    nextBtn.disabled = next === null;
    fill(list, table(['Device', 'State', 'Version', 'Ring', 'Phase', 'Tags', 'Last error', 'Last seen'], page.devices.map((d) => [
      link(`devices/${d.id}`, d.id), h('span', { class: d.online ? 'ok' : 'bad' }, d.online ? 'online' : 'offline'),
      d.active ? `${d.active.name}@${d.active.version}` : 'none', d.ring ?? '—', d.phase, d.tags.join(', '), d.lastError ?? '', time(d.lastSeen),
    ]), { id: 'device-table' }));
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); cursors = [undefined]; void update(); });
  nextBtn.addEventListener('click', () => { if (next) { cursors.push(next); void update(); } });
  prev.addEventListener('click', () => { if (cursors.length > 1) { cursors.pop(); void update(); } });
  return update;
}

interface DeviceEvent { seq: number; at: number; kind: string; code?: string; bundleId?: string; counter?: number; detail?: string }
interface DeviceDetail extends Device {
  state: { agentVersion: string; runtime: string; previous: Model | null; progress: { have: number; total: number } | null; lastError: { code: string; at: number } | null; counter: number; health?: { bundleId: string; requests: number; errors: number; nanOutputs: number; p95Ms: number | null } };
  events: DeviceEvent[];
}

export function devicePage(root: HTMLElement, _ctx: Ctx, args: string[]) {
  const id = args[0] ?? '';
  const body = h('div', { id: 'device' });
  fill(root, h('p', {}, link('fleet', '← Fleet')), h('h1', {}, `Device ${id}`), body);
  return async () => {
    const d = await api.get<DeviceDetail>(`/v1/devices/${encodeURIComponent(id)}`);
    const model = (m: Model | null) => (m ? `${m.name}@${m.version} (${short(m.bundleId)})` : 'none');
    const hl = d.state.health;
    const errors = d.events.filter((e) => e.code);
    fill(body,
      table(['', ''], [
        ['State', h('span', { class: d.online ? 'ok' : 'bad' }, d.online ? 'online' : 'offline')],
        ['Active model', model(d.active)], ['Previous model', model(d.state.previous)], ['Phase', d.phase],
        ['Assignment', d.assignment ? `${d.assignment.name}@${d.assignment.version}, counter ${d.assignment.counter}, ring ${d.ring ?? '—'}, expires ${time(d.assignment.expiresAt)}` : 'none'],
        ['Download', d.state.progress ? `${d.state.progress.have} of ${d.state.progress.total} chunks` : '—'],
        ['Tags', d.tags.join(', ') || '—'], ['Agent', `${d.state.agentVersion}, ${d.state.runtime}`],
        ['First seen', time(d.firstSeen)], ['Last seen', time(d.lastSeen)],
        ['Last error', d.state.lastError ? `${d.state.lastError.code} at ${time(d.state.lastError.at)}` : 'none'],
        ['Debug sampling', d.debug ? `on: ${d.debug.rowsPerWindow} rows per window until ${time(d.debug.until)}` : 'off'],
      ], { id: 'device-facts' }),
      h('h2', {}, 'Health'),
      hl ? table(['Requests', 'Errors', 'NaN outputs', 'Error rate', 'p95 latency'], [[String(hl.requests), String(hl.errors), String(hl.nanOutputs), hl.requests ? fixed(hl.errors / hl.requests, 4) : '—', hl.p95Ms === null ? '—' : `${fixed(hl.p95Ms, 2)} ms`]], { numeric: [0, 1, 2, 3, 4], id: 'device-health' })
        : h('p', { class: 'muted' }, 'No predict-path health reported yet.'),
      h('h2', {}, 'Last errors'),
      errors.length ? table(['When', 'Event', 'Code', 'Bundle'], errors.slice(0, 10).map((e) => [time(e.at), e.kind, e.code ?? '', e.bundleId ? short(e.bundleId) : '']), { id: 'device-errors' }) : h('p', { class: 'muted' }, 'No error events.'),
      h('h2', {}, 'Install history'),
      table(['Seq', 'When', 'Event', 'Bundle', 'Counter', 'Code', 'Detail'], d.events.map((e) => [String(e.seq), time(e.at), e.kind, e.bundleId ? short(e.bundleId) : '', e.counter === undefined ? '' : String(e.counter), e.code ?? '', e.detail ?? '']), { id: 'device-events', numeric: [0] }));
  };
}
