/**
 * `fleetcast devices list` (the hub's device registry as a table, filtered by
 * the hub: --state, --version, --tag) and `fleetcast devices get ID` (one
 * device: its summary, last state report and recent events).
 */
import type { DeviceSummary } from '@fleetcast/hub/api-schemas.js';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { hubUrlFrom, tokenFrom } from '../hub-client.js';
import { parseCli } from '@fleetcast/protocol/cli-args.js';

export const USAGE = `fleetcast devices list --hub URL [--state online|offline] [--version NAME@VERSION|none] [--tag TAG] [--json]
fleetcast devices get ID --hub URL [--json]
  online: heard from within the hub's onlineWindowMs (3 agent heartbeats, 180 s by default)`;

const bad = (p: string) => new FleetcastError('PROTO_ERR_INVALID_OPTION', `${p}\nusage: ${USAGE}`, 2);

/** Columns padded to their widest cell; the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

function ago(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86_400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

function row(d: DeviceSummary, now: number, debug: boolean): string[] {
  return [
    d.id,
    d.online ? 'online' : 'offline',
    d.active ? `${d.active.name}@${d.active.version}` : '-',
    d.phase,
    d.ring ?? '-',
    d.tags.length ? d.tags.join(',') : '-',
    d.assignment ? `${d.assignment.name}@${d.assignment.version} #${d.assignment.counter}` : '-',
    d.lastError ?? '-',
    ago(d.lastSeen, now),
    ...(debug ? [d.debug ? `${d.debug.rowsPerWindow} rows/window, ${Math.max(0, Math.ceil((d.debug.until - now) / 60_000))} min left` : '-'] : []),
  ];
}

const HEADER = ['DEVICE', 'STATE', 'ACTIVE', 'PHASE', 'RING', 'TAGS', 'ASSIGNED', 'LAST ERROR', 'LAST SEEN'];

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, {
    hub: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' }, state: { type: 'string' }, version: { type: 'string' }, tag: { type: 'string' },
  }, USAGE);
  const [sub, id, ...extra] = positionals;
  if (extra.length || (sub !== 'list' && sub !== 'get') || (sub === 'list' && id !== undefined)) throw bad(sub === 'list' || sub === 'get' ? `unexpected ${JSON.stringify(id ?? extra[0])}` : 'give list or get');
  if (values.state !== undefined && values.state !== 'online' && values.state !== 'offline') throw bad(`--state must be online or offline, got ${JSON.stringify(values.state)}`);
  if (values.version !== undefined && values.version !== 'none' && !/^[a-z0-9][a-z0-9._-]{0,63}@[1-9][0-9]{0,15}$/.test(values.version)) throw bad(`--version must be NAME@VERSION (e.g. churn@3) or none, got ${JSON.stringify(values.version)}`);
  const client = hubUrlFrom(values.hub, USAGE, tokenFrom(values.token));
  const now = Date.now();
  if (sub === 'get') {
    if (!id) throw bad('get needs a device ID');
    if (values.state !== undefined || values.version !== undefined || values.tag !== undefined) throw bad('--state, --version and --tag filter `devices list`');
    const d = await client.device(id);
    if (values.json) { process.stdout.write(JSON.stringify(d) + '\n'); return 0; }
    const fields = HEADER.slice(1).map((h, i) => [h.toLowerCase(), row(d, now, false)[i + 1]]);
    fields.push(['first seen', new Date(d.firstSeen).toISOString()], ['last seen at', new Date(d.lastSeen).toISOString()]);
    if (d.debug) fields.push(['debug', `${d.debug.rowsPerWindow} rows/window until ${new Date(d.debug.until).toISOString()}`]);
    process.stdout.write(table(['DEVICE', d.id], fields));
    const events = d.events as { type?: string; at?: number; code?: string }[];
    process.stdout.write(`recent events: ${events.length}\n`);
    for (const e of events.slice(0, 10)) process.stdout.write(`  ${JSON.stringify(e)}\n`);
    return 0;
  }
  const q = new URLSearchParams();
  for (const k of ['state', 'version', 'tag'] as const) if (values[k] !== undefined) q.set(k, values[k]!);
  const { devices } = q.size ? await client.get<{ devices: DeviceSummary[] }>(`/v1/devices?${q}`) : await client.devices();
  if (values.json) { process.stdout.write(JSON.stringify(devices) + '\n'); return 0; }
  if (devices.length === 0) { process.stdout.write(q.size ? 'no device matches the filter\n' : 'no devices have reported to the hub yet\n'); return 0; }
  // Issue #5: a DEBUG column appears while any device has debug raw sampling on.
  const debug = devices.some((d) => d.debug);
  process.stdout.write(table([...HEADER, ...(debug ? ['DEBUG'] : [])], devices.map((d) => row(d, now, debug))));
  return 0;
}
