/**
 * `fleetcast device debug ID --hub URL [--rows N] [--minutes M]` turns on
 * debug raw sampling for one device (issue #5); `--off` turns it off; `--show`
 * prints its state and the newest rows the hub received. Limits are the hub's:
 * ≤ 100 rows per window, ≤ 60 minutes, at most maxDebugDevices devices at once.
 */
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { parseCli } from '@fleetcast/protocol/cli-args.js';
import { hubUrlFrom, tokenFrom } from '../hub-client.js';

export const USAGE = 'fleetcast device debug ID --hub URL (--rows N --minutes M | --off | --show) [--json]';

function count(v: string | undefined, flag: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]{1,4}$/.test(v) || Number(v) < 1 || Number(v) > max) throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `${flag} must be a whole number from 1 to ${max}, got ${JSON.stringify(v)}\nusage: ${USAGE}`, 2);
  return Number(v);
}

interface State { deviceId: string; on: boolean; rowsPerWindow: number | null; until: number | null; delivered: boolean; rows?: { receivedAt: number; row: Record<string, unknown> }[]; storedRows?: number; discardedRows?: number }

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, {
    hub: { type: 'string' }, token: { type: 'string' }, rows: { type: 'string' }, minutes: { type: 'string' },
    off: { type: 'boolean' }, show: { type: 'boolean' }, json: { type: 'boolean' },
  }, USAGE);
  const id = positionals[0];
  const modes = [values.off, values.show, values.rows !== undefined || values.minutes !== undefined].filter(Boolean).length;
  if (!id || positionals.length !== 1 || modes > 1) { process.stderr.write(`usage: ${USAGE}\n`); return 2; }
  const rows = count(values.rows, '--rows', 100);
  const minutes = count(values.minutes, '--minutes', 60);
  const client = hubUrlFrom(values.hub, USAGE, tokenFrom(values.token));
  const path = `/v1/devices/${encodeURIComponent(id)}/debug`;
  const st: State = values.show ? await client.get<State>(`${path}?limit=20`)
    : values.off ? await client.send<State>('DELETE', path)
      : await client.send<State>('PUT', path, { ...(rows !== undefined ? { rowsPerWindow: rows } : {}), ...(minutes !== undefined ? { minutes } : {}) });
  if (values.json) { process.stdout.write(JSON.stringify(st) + '\n'); return 0; }
  process.stdout.write(st.on
    ? `debug sampling ON for ${st.deviceId}: ${st.rowsPerWindow} raw rows per window until ${new Date(st.until!).toISOString()}${st.delivered ? '' : ' (not yet acknowledged by the broker; the hub retries)'}\n`
    : `debug sampling OFF for ${st.deviceId}\n`);
  if (st.rows) {
    process.stdout.write(`rows stored: ${st.storedRows ?? 0}, discarded (not requested): ${st.discardedRows ?? 0}\n`);
    for (const r of st.rows) process.stdout.write(`  ${new Date(r.receivedAt).toISOString()}  ${JSON.stringify(r.row)}\n`);
  }
  return 0;
}
