/** `fleetcast devices list --hub URL [--json]`: the hub's device registry as a table. */
import { hubUrlFrom, tokenFrom } from '../hub-client.js';
import { parseCli } from '../args.js';

const USAGE = 'fleetcast devices list --hub URL [--json]';

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

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, { hub: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  if (positionals[0] !== 'list' || positionals.length !== 1) { process.stderr.write(`usage: ${USAGE}\n`); return 2; }
  const client = hubUrlFrom(values.hub, USAGE, tokenFrom(values.token));
  const { devices } = await client.devices();
  if (values.json) { process.stdout.write(JSON.stringify(devices) + '\n'); return 0; }
  if (devices.length === 0) { process.stdout.write('no devices have reported to the hub yet\n'); return 0; }
  const now = Date.now();
  // Issue #5: a DEBUG column appears while any device has debug raw sampling on.
  const debug = devices.some((d) => d.debug);
  process.stdout.write(table(
    ['DEVICE', 'ACTIVE', 'PHASE', 'ASSIGNED', 'LAST ERROR', 'LAST SEEN', ...(debug ? ['DEBUG'] : [])],
    devices.map((d) => [
      d.id,
      d.active ? `${d.active.name}@${d.active.version}` : '-',
      d.phase,
      d.assignment ? `${d.assignment.name}@${d.assignment.version} #${d.assignment.counter}` : '-',
      d.lastError ?? '-',
      ago(d.lastSeen, now),
      ...(debug ? [d.debug ? `${d.debug.rowsPerWindow} rows/window, ${Math.max(0, Math.ceil((d.debug.until - now) / 60_000))} min left` : '-'] : []),
    ]),
  ));
  return 0;
}
