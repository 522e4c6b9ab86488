/** Bundles: the published list, and one bundle's signed manifest and where it is deployed. */
import { api, qs } from './api.js';
import { bytes, fill, fixed, h, link, short, table, time } from './dom.js';

interface Tensor { name: string; type: string; shape: (number | string | null)[]; features?: string[] }
interface Manifest {
  name: string; version: number; createdAt: string; description?: string;
  payload: { compressedLength: number; rawLength: number; chunkSize: number; chunkHashes: string[]; rawSha256: string };
  inputs: Tensor[]; outputs: Tensor[]; compat: Record<string, unknown>; golden?: unknown[];
  reference?: { features?: { name: string; kind: string; profile?: { count: number; mean: number; std: number; edges: number[] } }[]; outputs?: { name: string }[] };
}
interface Bundle { bundleId: string; name: string; version: number; compressedLength: number; rawLength: number; chunkCount: number; createdAt: number }
interface Detail extends Bundle { manifest: Manifest; envelope: { signatures: { keyid: string }[] } }

export function bundlesPage(root: HTMLElement) {
  const list = h('div', { id: 'bundles' });
  fill(root, h('h1', {}, 'Bundles'), list);
  return async () => {
    const r = await api.get<{ bundles: Bundle[] }>('/v1/bundles');
    fill(list, r.bundles.length === 0 ? h('p', { class: 'muted' }, 'No bundle published yet (fleetcast publish).') :
      table(['Bundle', 'Id', 'Compressed', 'Raw', 'Chunks', 'Published'], r.bundles.map((b) => [
        link(`bundle/${b.bundleId}`, `${b.name}@${b.version}`), h('span', { class: 'mono' }, short(b.bundleId, 16)), bytes(b.compressedLength), bytes(b.rawLength), String(b.chunkCount), time(b.createdAt),
      ]), { numeric: [2, 3, 4], id: 'bundle-table' }));
  };
}

const shape = (t: Tensor) => `[${t.shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;

export function bundlePage(root: HTMLElement, _ctx: unknown, args: string[]) {
  const id = args[0] ?? '';
  const body = h('div', { id: 'bundle' });
  fill(root, h('p', {}, link('bundles', '← Bundles')), body);
  return async () => {
    const b = await api.get<Detail>(`/v1/bundles/${encodeURIComponent(id)}`);
    const m = b.manifest;
    const [active, roots, rollouts] = await Promise.all([
      api.get<{ total: number }>(`/v1/devices${qs({ version: `${b.name}@${b.version}`, limit: 1 })}`),
      api.get<{ roots: { payload: string }[] }>('/v1/log/roots'),
      api.get<{ rollouts: { id: string; bundleId: string; state: string; ring: string }[] }>('/v1/rollouts'),
    ]);
    const mine = rollouts.rollouts.filter((r) => r.bundleId === b.bundleId);
    // Name each signer by its role in the newest root the hub serves.
    const root = roots.roots.length ? JSON.parse(atob(roots.roots[roots.roots.length - 1].payload)) as { roles?: Record<string, { keyids: string[] }> } : {};
    const roleOf = (k: string) => Object.entries(root.roles ?? {}).filter(([, r]) => r.keyids.includes(k)).map(([n]) => n).join(', ') || 'not in the current root';
    const tensors = (ts: Tensor[]) => table(['Name', 'Type', 'Shape', 'Features'], ts.map((t) => [t.name, t.type, shape(t), (t.features ?? []).join(', ')]));
    const ref = m.reference?.features ?? [];
    fill(body, h('h1', {}, `Bundle ${b.name}@${b.version}`),
      table(['', ''], [
        ['Id', h('span', { class: 'mono' }, b.bundleId)], ['Built', m.createdAt], ['Published', time(b.createdAt)],
        ['Sizes', `${bytes(b.compressedLength)} compressed, ${bytes(b.rawLength)} raw, ${b.chunkCount} chunks of ${bytes(m.payload.chunkSize)}`],
        ['Signed by', h('span', { id: 'signers' }, b.envelope.signatures.map((s) => `${short(s.keyid, 16)} (${roleOf(s.keyid)})`).join('; '))],
        ['Golden cases', String(m.golden?.length ?? 0)], ['Compatibility', JSON.stringify(m.compat)],
        ['Deployed', h('span', { id: 'deployed' }, `${active.total} ${active.total === 1 ? 'device runs' : 'devices run'} it`)],
        ['Rollouts', mine.length ? h('span', {}, ...mine.flatMap((r, i) => [i ? ', ' : '', link(`rollout/${r.id}`, r.id), ` (${r.state}, ${r.ring})`])) : 'none'],
        ...(m.description ? [['Description', m.description]] : []),
      ], { id: 'bundle-facts' }),
      h('h2', {}, 'Inputs'), tensors(m.inputs), h('h2', {}, 'Outputs'), tensors(m.outputs),
      h('h2', {}, 'Reference profile'),
      ref.length ? table(['Feature', 'Kind', 'n', 'Mean', 'Std', 'Bins'], ref.map((f) => [f.name, f.kind, f.profile ? String(f.profile.count) : '—', fixed(f.profile?.mean), fixed(f.profile?.std), f.profile ? String(f.profile.edges.length + 1) : '—']), { id: 'reference', numeric: [2, 3, 4, 5] })
        : h('p', { class: 'muted' }, 'None: drift against a reference is not judged for this bundle.'));
  };
}
