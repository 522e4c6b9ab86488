/**
 * The agent's local status page (GET /): one server-rendered HTML document,
 * no script and no external resource, so it works with JavaScript off, in a
 * text browser, and on a device with no internet. It shows what a field
 * engineer needs first: which model serves (and which one is kept for
 * rollback), the install phase, the last error codes with their meaning from
 * the error table, and recent predict latency and error counts. A <meta
 * refresh> keeps it current without JavaScript.
 */
import type { AgentStatus } from './agent.js';
import { AGENT_ERRORS } from './errors.js';

const esc = (v: unknown): string => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function meaning(code: string): string {
  return (AGENT_ERRORS as Record<string, { message: string }>)[code]?.message ?? 'see docs/errors.md';
}

function model(m: { name: string; version: number; bundleId: string } | null): string {
  return m ? `${esc(m.name)} v${esc(m.version)} <code>${esc(m.bundleId.slice(0, 12))}…</code>` : '<em>none</em>';
}

function debugCell(s: AgentStatus, now: number): string {
  const d = s.telemetry?.debug;
  if (!d?.on) return 'off';
  const until = d.until === null ? 'until switched off' : `until ${esc(new Date(d.until).toISOString())} (${esc(Math.max(0, Math.round((d.until - now) / 1000)))} s)`;
  return `<strong>on</strong>: ${esc(d.rowsPerWindow)} raw rows per window sent to the hub, ${until}`;
}

function brokerCell(s: AgentStatus, now: number): string {
  if (s.connected) return 'connected';
  const f = s.broker;
  if (!f) return 'not connected';
  const next = f.nextAttemptAt === null ? '' : `, next attempt in ${esc(Math.max(0, Math.round((f.nextAttemptAt - now) / 1000)))} s`;
  return `not connected: <code>${esc(f.code)}</code> ${esc(f.detail)} (${esc(f.attempts)} failed attempts in a row${next})`;
}

const ms = (v: number | null): string => (v === null ? '–' : `${v.toFixed(2)} ms`);

export function renderStatusPage(s: AgentStatus, now = Date.now()): string {
  const p = s.predictions;
  const rows: [string, string, string][] = [
    ['device', esc(s.deviceId), 'device'],
    ['active model', model(s.active), 'active'],
    ['previous model', model(s.previous), 'previous'],
    ['install phase', esc(s.phase), 'phase'],
    ['target', s.target ? `<code>${esc(s.target.bundleId.slice(0, 12))}…</code> #${esc(s.target.counter)}` : '–', 'target'],
    ['progress', s.progress ? `${esc(s.progress.have)} / ${esc(s.progress.total)} chunks` : '–', 'progress'],
    ['probation', s.probation ? `${esc(s.probation.requests)} requests, ${esc(s.probation.errors)} errors, ends in ${esc(Math.max(0, Math.round((s.probation.until - now) / 1000)))} s` : '–', 'probation'],
    // Issue #5: raw values leave the device only while an operator has debug sampling on; say so plainly.
    ['debug sampling', debugCell(s, now), 'debug'],
    ['runtime', esc(s.runtime), 'runtime'],
    ['broker', brokerCell(s, now), 'broker'],
    ['agent', esc(s.agentVersion), 'agent'],
  ];
  const errors = [...(s.broker ? [{ code: s.broker.code, at: s.broker.at }] : []), ...(s.lastError ? [{ code: s.lastError.code, at: s.lastError.at }] : []), ...p.lastCodes]
    .filter((e, i, all) => all.findIndex((x) => x.code === e.code && x.at === e.at) === i).slice(0, 10);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fleetcast-agent ${esc(s.deviceId)}</title>
<style>body{font:14px system-ui,sans-serif;margin:1.5em;max-width:60em}table{border-collapse:collapse;margin:0 0 1.5em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f4f4f4}</style>
</head><body>
<h1>fleetcast-agent <small>${esc(s.deviceId)}</small></h1>
<table id="state"><tbody>
${rows.map(([k, v, id]) => `<tr id="row-${id}"><th scope="row">${k}</th><td>${v}</td></tr>`).join('\n')}
</tbody></table>
<h2>Predictions</h2>
<table id="predict"><thead><tr><th>requests</th><th>model errors</th><th>refused busy</th><th>running</th><th>p50</th><th>p95</th><th>p99</th><th>recent window</th></tr></thead>
<tbody><tr><td>${p.requests}</td><td>${p.errors}</td><td>${p.busy}</td><td>${p.running}</td><td>${ms(p.recent.p50)}</td><td>${ms(p.recent.p95)}</td><td>${ms(p.recent.p99)}</td><td>${p.recent.n} (${p.recent.errors} errors)</td></tr></tbody></table>
<h2>Last errors</h2>
${errors.length === 0 ? '<p id="no-errors">none</p>' : `<table id="errors"><thead><tr><th>code</th><th>when</th><th>meaning</th></tr></thead><tbody>
${errors.map((e) => `<tr><td><code>${esc(e.code)}</code></td><td>${esc(new Date(e.at).toISOString())}</td><td>${esc(meaning(e.code))}</td></tr>`).join('\n')}
</tbody></table>`}
<p><a href="/v1/status">/v1/status</a> (JSON)</p>
</body></html>
`;
}
