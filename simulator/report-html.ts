/**
 * The run's report as one self-contained HTML file: inline SVG charts drawn
 * here (no CDN, no script, nothing fetched), so it opens from a mail
 * attachment or a CI artifact as it is. Every time chart shares the run's
 * time axis and shows the faults (and spans with the broker gone) as bands.
 */
import type { RunRecord } from './run-record.js';

const W = 760;
const H = 220;
const PAD = { l: 48, r: 12, t: 12, b: 28 };
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const fmt = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));

interface Series { name: string; points: [number, number][]; dash?: boolean }
interface Band { from: number; to: number; label: string; colour: string }
interface Marker { x: number; label: string }

interface Chart { id: string; title: string; xLabel: string; yLabel: string; series: Series[]; xMax: number; bands?: Band[]; markers?: Marker[]; xIsTime?: boolean }

function chart(c: Chart): string {
  const yMax = Math.max(1, ...c.series.flatMap((s) => s.points.map((p) => p[1])));
  const xMax = Math.max(1, c.xMax);
  const x = (v: number) => PAD.l + (v / xMax) * (W - PAD.l - PAD.r);
  const y = (v: number) => H - PAD.b - (v / yMax) * (H - PAD.t - PAD.b);
  const parts: string[] = [];
  for (const b of c.bands ?? []) {
    const x0 = x(Math.max(0, b.from));
    const x1 = x(Math.min(xMax, Math.max(b.to, b.from + xMax / 200)));
    parts.push(`<rect class="band" x="${x0.toFixed(1)}" y="${PAD.t}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${H - PAD.t - PAD.b}" fill="${b.colour}" fill-opacity="0.18"><title>${esc(b.label)}</title></rect>`);
  }
  // Axes and ticks.
  parts.push(`<line x1="${PAD.l}" y1="${H - PAD.b}" x2="${W - PAD.r}" y2="${H - PAD.b}" stroke="#333"/><line x1="${PAD.l}" y1="${PAD.t}" x2="${PAD.l}" y2="${H - PAD.b}" stroke="#333"/>`);
  for (let i = 0; i <= 4; i++) {
    const xv = (xMax * i) / 4;
    const yv = (yMax * i) / 4;
    parts.push(`<text x="${x(xv).toFixed(1)}" y="${H - PAD.b + 14}" font-size="10" text-anchor="middle">${fmt(c.xIsTime ? xv / 1000 : xv)}</text>`);
    parts.push(`<text x="${PAD.l - 4}" y="${(y(yv) + 3).toFixed(1)}" font-size="10" text-anchor="end">${fmt(yv)}</text>`);
  }
  parts.push(`<text x="${(W / 2).toFixed(0)}" y="${H - 2}" font-size="11" text-anchor="middle">${esc(c.xLabel)}</text>`);
  parts.push(`<text x="10" y="${(H / 2).toFixed(0)}" font-size="11" text-anchor="middle" transform="rotate(-90 10 ${(H / 2).toFixed(0)})">${esc(c.yLabel)}</text>`);
  c.series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, k) => `${k ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('');
    parts.push(`<path class="series" d="${d}" fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="1.6"${s.dash ? ' stroke-dasharray="4 3"' : ''}><title>${esc(s.name)}</title></path>`);
  });
  for (const m of c.markers ?? []) {
    parts.push(`<line class="marker" x1="${x(m.x).toFixed(1)}" y1="${PAD.t}" x2="${x(m.x).toFixed(1)}" y2="${H - PAD.b}" stroke="#555" stroke-dasharray="2 2"><title>${esc(m.label)}</title></line>`);
  }
  const legend = c.series.map((s, i) => `<span class="key"><i style="background:${COLOURS[i % COLOURS.length]}"></i>${esc(s.name)}${s.dash ? ' (dashed)' : ''}</span>`).join('')
    + (c.bands ?? []).filter((b, i, all) => all.findIndex((o) => o.label === b.label) === i).map((b) => `<span class="key"><i style="background:${b.colour};opacity:.4"></i>${esc(b.label)}</span>`).join('');
  return `<figure id="${c.id}"><figcaption>${esc(c.title)}</figcaption><svg class="chart" data-chart="${c.id}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(c.title)}">${parts.join('')}</svg><div class="legend">${legend}</div></figure>`;
}

function bandsOf(r: RunRecord): Band[] {
  return [
    ...r.faults.map((f) => ({ from: f.from, to: f.to, label: `fault: ${f.kind}${f.group ? ` (${f.group})` : ''}`, colour: '#ff7f0e' })),
    ...r.brokerOutages.map((o) => ({ from: o.from, to: Math.max(o.to, o.from + 1000), label: 'broker gone: no device connected', colour: '#d62728' })),
  ];
}

export function renderReportHtml(r: RunRecord): string {
  const end = Math.max(r.durationMs, ...r.samples.map((s) => s.t));
  const bands = bandsOf(r);
  const versions = [...new Set(r.samples.flatMap((s) => Object.values(s.versions).flatMap((v) => Object.keys(v))))].sort();
  const versionSeries: Series[] = versions.map((v) => ({ name: v, points: r.samples.map((s) => [s.t, Object.values(s.versions).reduce((a, g) => a + (g[v] ?? 0), 0)] as [number, number]) }));
  const connected: Series[] = [{ name: 'devices connected', points: r.samples.map((s) => [s.t, s.connected]) }];
  const durations = r.installs.map((i) => i.ms).sort((a, b) => a - b);
  const cdf: Series[] = [...new Set(r.installs.map((i) => i.model))].sort().map((m) => {
    const d = r.installs.filter((i) => i.model === m).map((i) => i.ms).sort((a, b) => a - b);
    return { name: m, points: d.map((v, k) => [v, (k + 1) / d.length] as [number, number]) };
  });
  const perGroup: Series[] = r.groups.flatMap((g) => [
    { name: `${g.name} ok/s`, points: r.samples.map((s) => [s.t, (s.ok[g.name] ?? 0) / Math.max(s.dt, 0.001)] as [number, number]) },
    { name: `${g.name} failed/s`, dash: true, points: r.samples.map((s) => [s.t, (s.failed[g.name] ?? 0) / Math.max(s.dt, 0.001)] as [number, number]) },
  ]);
  const decisions: Marker[] = r.rollouts.flatMap((ro) => ro.decisions.map((d) => ({ x: Math.max(0, d.t), label: `${ro.id}: ${d.kind}${d.ring ? ` ${d.ring}` : ''} — ${d.reason}` })));
  const ringIndex = new Map<string, number>();
  const rolloutSeries: Series[] = r.rollouts.map((ro) => ({
    name: `${ro.id} ring (index)`,
    points: ro.states.flatMap((st, k) => {
      if (!ringIndex.has(st.ring)) ringIndex.set(st.ring, ringIndex.size + 1);
      const y = ringIndex.get(st.ring)!;
      const next = ro.states[k + 1]?.t ?? end;
      return [[st.t, y], [next, y]] as [number, number][];
    }),
  }));
  const driftMarkers: Marker[] = r.drift.flatMap((d) => d.events.map((e) => ({ x: Math.max(0, e.t), label: `${d.model}: ${e.text}` })));
  const driftSeries: Series[] = r.drift.map((d) => ({ name: `${d.model} drift alerts (cumulative)`, points: d.events.map((e, k) => [Math.max(0, e.t), k + 1] as [number, number]) }));

  const charts = [
    chart({ id: 'versions', title: 'Devices per version over time', xLabel: 'seconds', yLabel: 'devices', series: versionSeries, xMax: end, bands, xIsTime: true, markers: decisions }),
    chart({ id: 'install-cdf', title: `Install durations (CDF, ${durations.length} installs)`, xLabel: 'milliseconds', yLabel: 'share', series: cdf, xMax: durations[durations.length - 1] ?? 1 }),
    chart({ id: 'predictions', title: 'Predictions and failures per second, per group', xLabel: 'seconds', yLabel: 'per second', series: perGroup, xMax: end, bands, xIsTime: true }),
    chart({ id: 'rollout', title: `Rollout rings and decisions (${[...ringIndex].map(([k, v]) => `${v} = ${k}`).join(', ') || 'no rollout'})`, xLabel: 'seconds', yLabel: 'ring', series: rolloutSeries, xMax: end, bands, markers: decisions, xIsTime: true }),
    chart({ id: 'drift', title: 'Drift alerts as the hub raised them', xLabel: 'seconds', yLabel: 'alerts', series: driftSeries, xMax: end, bands, markers: driftMarkers, xIsTime: true }),
    chart({ id: 'connected', title: 'Devices connected to the broker', xLabel: 'seconds', yLabel: 'devices', series: connected, xMax: end, bands, xIsTime: true }),
  ];
  const verdicts = r.expectations.map((e) => `<tr class="${e.met ? 'met' : 'unmet'}" data-verdict="${e.met ? 'met' : 'unmet'}"><td>${e.met ? '✔ met' : '✘ NOT met'}</td><td>${esc(e.label)}</td><td>${esc(e.detail)}</td></tr>`).join('');
  const driftRows = r.drift.flatMap((d) => (d.error ? [`<tr><td>${esc(d.model)}</td><td colspan="4">${esc(d.error)}</td></tr>`] : d.flagged.map((f) => `<tr><td>${esc(d.model)}</td><td>${esc(f.ring)}</td><td>${esc(f.feature)}</td><td>${f.psi === null ? '–' : fmt(f.psi)}</td><td>${esc(f.newCategories.join(', '))}${f.missingRate ? ` missing ${(f.missingRate * 100).toFixed(0)}%` : ''}</td></tr>`))).join('');
  const decisionRows = r.rollouts.flatMap((ro) => ro.decisions.map((d) => `<tr><td>${fmt(d.t / 1000)} s</td><td>${esc(ro.id)}</td><td>${esc(d.kind)}</td><td>${esc(d.ring ?? '')}</td><td>${esc(d.reason)}</td></tr>`)).join('');
  const actionRows = r.actions.map((a) => `<tr class="${a.ok ? '' : 'unmet'}"><td>${fmt(a.t / 1000)} s</td><td>${esc(a.what)}</td><td>${a.ok ? 'ok' : esc(a.error ?? 'failed')}</td></tr>`).join('');
  const faultRows = [...r.faults.map((f) => [f.from, f.to, `${f.kind}${f.group ? ` (${f.group})` : ''}${f.phases ? `: devices were ${Object.entries(f.phases).map(([p, n]) => `${n} ${p}`).join(', ')}` : ''}`] as const), ...r.brokerOutages.map((o) => [o.from, o.to, 'broker gone: no device connected'] as const)]
    .map(([a, b, l]) => `<tr><td>${fmt(a / 1000)} s</td><td>${fmt(b / 1000)} s</td><td>${esc(l)}</td></tr>`).join('');
  const met = r.expectations.every((e) => e.met);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fleetcast sim: ${esc(r.scenario)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;max-width:820px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
tr.met td:first-child{color:#176f2c;font-weight:600}tr.unmet td:first-child{color:#b00020;font-weight:600}
figure{margin:16px 0}figcaption{font-weight:600;margin-bottom:4px}.legend{font-size:12px}.key{margin-right:12px}.key i{display:inline-block;width:12px;height:8px;margin-right:4px}
.summary{padding:8px 12px;border-radius:4px;background:${met ? '#e6f4ea' : '#fce8e6'}}
</style></head><body>
<h1>fleetcast sim: ${esc(r.scenario)}</h1>
<p class="summary" id="outcome" data-outcome="${met ? 'met' : 'unmet'}">${met ? 'Every expectation met' : 'Expectations NOT met'}${r.interrupted ? ' (interrupted with Ctrl-C)' : ''}. ${r.groups.reduce((a, g) => a + g.count, 0)} devices in ${r.groups.length} group(s), ${fmt(end / 1000)} s (time scale ${r.timeScale}), predictions ok ${r.totals.ok}, failed ${r.totals.failed}, installs ${r.installs.length}, install failures ${r.installFailures.length}.</p>
<h2>Expectations</h2>
<table id="expectations"><tr><th>verdict</th><th>expectation</th><th>what happened</th></tr>${verdicts || '<tr><td colspan="3">none</td></tr>'}</table>
<h2>Charts</h2>
${charts.join('\n')}
<h2>Rollout decisions</h2>
<table id="decisions"><tr><th>at</th><th>rollout</th><th>decision</th><th>ring</th><th>reason</th></tr>${decisionRows || '<tr><td colspan="5">none</td></tr>'}</table>
<h2>Drift the hub flagged</h2>
<table id="drift-rows"><tr><th>model</th><th>ring</th><th>feature</th><th>PSI</th><th>new categories, missing</th></tr>${driftRows || '<tr><td colspan="5">none</td></tr>'}</table>
<h2>Faults</h2>
<table id="faults"><tr><th>from</th><th>to</th><th>fault</th></tr>${faultRows || '<tr><td colspan="3">none</td></tr>'}</table>
<h2>Actions</h2>
<table id="actions"><tr><th>at</th><th>action</th><th>result</th></tr>${actionRows || '<tr><td colspan="3">none</td></tr>'}</table>
<h2>Groups</h2>
<table><tr><th>group</th><th>devices</th><th>ids</th><th>runtime</th><th>tags</th></tr>${r.groups.map((g) => `<tr><td>${esc(g.name)}</td><td>${g.count}</td><td>${esc(g.first)} … ${esc(g.last)}</td><td>${esc(g.runtime)}</td><td>${esc(g.tags.join(', '))}</td></tr>`).join('')}</table>
</body></html>
`;
}
