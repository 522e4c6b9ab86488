/**
 * `fleetcast drift report NAME@VERSION [--ring R] [--since T] [--json]`: the
 * hub's drift report (GET /v1/drift/NAME/VERSION) as a table, worst first.
 * T is epoch ms or a duration back from now (15m, 2h, 7d). Exit code 0 with
 * no drift, 3 when the report shows drift (scripts can gate on it), 4 when
 * nothing could be judged because the bundle has no reference profile and no
 * earlier version has telemetry: a script must not read that as "no drift".
 */
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import type { DriftReport } from '@fleetcast/hub/drift/report.js';
import { formatDriftReport } from '@fleetcast/hub/drift/format.js';
import { hubUrlFrom, tokenFrom } from '../hub-client.js';
import { parseCli } from '@fleetcast/protocol/cli-args.js';

export const USAGE = 'fleetcast drift report NAME@VERSION --hub URL [--ring R] [--since 15m|EPOCH_MS] [--until …] [--json] [--limit N]\n  exit 0: no drift, 3: drift, 4: not judged (the bundle has no reference profile and no earlier version has telemetry)';

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, {
    hub: { type: 'string' }, token: { type: 'string' }, ring: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' },
    json: { type: 'boolean' }, limit: { type: 'string' },
  }, USAGE);
  if (positionals[0] !== 'report' || positionals.length !== 2) { process.stderr.write(`usage: ${USAGE}\n`); return 2; }
  const m = /^([a-z0-9][a-z0-9._-]{0,63})@([1-9][0-9]{0,9})$/.exec(positionals[1]);
  if (!m) throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `expected NAME@VERSION, got ${JSON.stringify(positionals[1])}\nusage: ${USAGE}`, 2);
  const limit = values.limit === undefined ? 40 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `--limit must be a positive integer\nusage: ${USAGE}`, 2);
  const client = hubUrlFrom(values.hub, USAGE, tokenFrom(values.token));
  const q = new URLSearchParams();
  for (const k of ['ring', 'since', 'until'] as const) if (values[k] !== undefined) q.set(k, values[k]!);
  const report = await client.get<DriftReport>(`/v1/drift/${m[1]}/${m[2]}${q.size ? `?${q}` : ''}`);
  process.stdout.write(values.json ? JSON.stringify(report) + '\n' : formatDriftReport(report, { limit }));
  if (report.drift) return 3;
  return !report.hasReference && report.rows.length === 0 ? 4 : 0;
}
