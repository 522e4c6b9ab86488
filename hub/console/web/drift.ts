/**
 * Drift: for one model version, a heat map of features × rings coloured by
 * effect size against the signed reference (the report's score: 1 is at the
 * bundle's threshold), and one feature's reference and field distributions
 * drawn over each other from the histogram bins, with n and the verdict.
 */
import { api, qs } from './api.js';
import { fill, fixed, h, svg, table } from './dom.js';

interface Row {
  ring: string; feature: string; kind: string; type: string; baseline: 'reference' | 'previous'; n: number; baselineN: number;
  psi: number | null; ks: number | null; wassersteinNorm: number | null; verdict: string; score: number; note?: string;
  bins?: { edges: number[]; reference: number[]; current: number[] };
}
interface Report { name: string; version: number; hasReference: boolean; drift: boolean; rings: { ring: string; requests: number; sampled: number; latencyMs: { p95: number } | null }[]; rows: Row[] }
interface Bundle { bundleId: string; name: string; version: number }

/** White at 0, red from the threshold (score 1) on. */
function heat(score: number, alpha = 1): string {
  const t = Math.max(0, Math.min(1, score));
  const c = Math.round(255 - 155 * t);
  return `rgba(255, ${c}, ${c}, ${alpha})`;
}

function histogram(r: Row): SVGElement {
  const b = r.bins!;
  const W = 560, H = 200, pad = 28;
  const ref = b.reference.reduce((a, x) => a + x, 0) || 1;
  const cur = b.current.reduce((a, x) => a + x, 0) || 1;
  const shares = b.reference.map((x, i) => [x / ref, b.current[i] / cur]);
  const top = Math.max(...shares.flat(), 1e-9);
  const bw = (W - 2 * pad) / shares.length;
  const y = (v: number) => H - pad - (v / top) * (H - 2 * pad);
  // Each bar is labelled with its lower edge (the first bin has none: everything below the first edge).
  const label = (i: number) => (i === 0 ? '' : fixed(b.edges[i - 1], 2));
  const every = Math.ceil(shares.length / 8);
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': `${r.feature}: reference and field distributions over ${shares.length} bins`, id: 'histogram' },
    ...shares.flatMap(([a, c], i) => [
      svg('rect', { x: pad + i * bw + 1, y: y(a), width: Math.max(bw - 2, 1), height: H - pad - y(a), fill: '#8aa4c8', 'fill-opacity': 0.7, class: 'ref-bar' }, svg('title', {}, `reference ${fixed(a * 100, 1)}%`)),
      svg('rect', { x: pad + i * bw + bw * 0.25, y: y(c), width: Math.max(bw * 0.5, 1), height: H - pad - y(c), fill: '#d9534f', 'fill-opacity': 0.75, class: 'cur-bar' }, svg('title', {}, `field ${fixed(c * 100, 1)}%`)),
      ...(i % every === 0 && i > 0 ? [svg('text', { x: pad + i * bw, y: H - 8, 'text-anchor': 'middle' }, label(i))] : []),
    ]),
    svg('line', { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, stroke: '#57606a' }));
}

export async function driftPage(root: HTMLElement) {
  const bundles = (await api.get<{ bundles: Bundle[] }>('/v1/bundles')).bundles;
  const pick = h('select', { id: 'drift-bundle' }, ...[...bundles].reverse().map((b) => h('option', { value: `${b.name}/${b.version}` }, `${b.name}@${b.version}`)));
  const summary = h('div', { id: 'drift-summary' });
  const map = h('div', { id: 'heatmap' });
  const detail = h('section', { id: 'drift-detail', 'aria-live': 'polite' });
  fill(root, h('h1', {}, 'Drift'), h('label', {}, 'Model version ', pick), summary, h('h2', {}, 'Features × rings (effect size against the reference)'),
    h('p', { class: 'muted' }, 'Each cell is the feature\'s effect size in that ring over its threshold: 1 is at the threshold, white is no change, full red is at or past it. Faded cells have fewer samples than the minimum.'), map, detail);
  let chosen: { feature: string; ring: string } | null = null;
  let last: Report | null = null;

  const showDetail = () => {
    const r = last?.rows.find((x) => x.baseline === 'reference' && x.feature === chosen?.feature && x.ring === chosen?.ring);
    if (!r) { fill(detail, h('p', { class: 'muted' }, 'Choose a cell to see its distributions.')); return; }
    fill(detail, h('h2', {}, `${r.feature} in ${r.ring}`),
      h('p', {}, `n ${r.n} against reference n ${r.baselineN} · verdict `, h('strong', { class: r.verdict, id: 'drift-verdict' }, r.verdict), ` · PSI ${fixed(r.psi)} · KS ${fixed(r.ks)} · Wasserstein ${fixed(r.wassersteinNorm)}`, r.note ? ` · ${r.note}` : ''),
      r.bins ? histogram(r) : h('p', { class: 'muted' }, 'Categorical feature: no bins to draw.'),
      h('p', { class: 'legend' }, h('span', { class: 'swatch ref' }), ' reference ', h('span', { class: 'swatch cur' }), ' field (this ring), as shares of each side\'s n'));
  };

  const update = async () => {
    if (!pick.value) { fill(map, h('p', { class: 'muted' }, 'No bundle published yet.')); return; }
    const [name, version] = pick.value.split('/');
    const rep = await api.get<Report>(`/v1/drift/${encodeURIComponent(name)}/${encodeURIComponent(version)}${qs({})}`);
    last = rep;
    fill(summary, !rep.hasReference ? h('p', { class: 'wait' }, 'This bundle has no signed reference profile (bundle build --reference): nothing is judged against a reference.') :
      table(['Ring', 'Requests', 'Sampled', 'p95 latency'], rep.rings.map((g) => [g.ring, String(g.requests), String(g.sampled), g.latencyMs ? `${fixed(g.latencyMs.p95, 2)} ms` : '—']), { numeric: [1, 2, 3] }),
      h('p', {}, 'Overall: ', h('strong', { class: rep.drift ? 'drift' : 'ok' }, rep.drift ? 'drift' : 'no drift found')));
    const rows = rep.rows.filter((r) => r.baseline === 'reference');
    const rings = [...new Set(rows.map((r) => r.ring))].sort();
    const features = [...new Set(rows.map((r) => r.feature))].sort();
    if (rows.length === 0) { fill(map, h('p', { class: 'muted' }, 'No telemetry for this version in the drift window yet.')); showDetail(); return; }
    chosen ??= { feature: rows[0].feature, ring: rows[0].ring };
    fill(map, h('table', { class: 'heat', id: 'heat-table' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Feature'), ...rings.map((g) => h('th', { scope: 'col' }, g)))),
      h('tbody', {}, ...features.map((f) => h('tr', {}, h('th', { scope: 'row' }, f), ...rings.map((g) => {
        const r = rows.find((x) => x.feature === f && x.ring === g);
        const td = h('td', { class: 'cell' });
        if (!r) return td;
        // Too little data to judge: coloured by the same scale, faded, and said so in the cell.
        const judged = r.verdict !== 'insufficient-data';
        td.style.backgroundColor = heat(r.score, judged ? 1 : 0.35);
        td.appendChild(h('button', { type: 'button', 'aria-label': `${f} in ${g}: effect ${fixed(r.score, 2)}, ${r.verdict}`, 'aria-pressed': chosen?.feature === f && chosen.ring === g ? 'true' : 'false',
          onclick: () => { chosen = { feature: f, ring: g }; showDetail(); } }, fixed(r.score, 2), h('br'), h('small', {}, judged ? r.verdict : `n ${r.n}: too few`)));
        return td;
      }))))));
    showDetail();
  };
  pick.addEventListener('change', () => { chosen = null; void update(); });
  return update;
}
