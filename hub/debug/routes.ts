/**
 * Debug raw sampling over HTTP (issue #5):
 *   PUT    /v1/devices/:id/debug  {rowsPerWindow?, minutes?}  turn on or change (operator)
 *   DELETE /v1/devices/:id/debug                              turn off (operator)
 *   GET    /v1/devices/:id/debug?limit=N                      state, audit trail, rows received (auditor)
 * Roles come from the guard's rule (writes need operator, reads auditor: hub/auth/guard.ts).
 */
import type { FastifyInstance } from 'fastify';
import { DEBUG_LIMITS } from '@fleetcast/protocol/control.js';
import { arr, bool, int, json, nullable, obj, optional, record, sha256Hex, str, type Infer } from '@fleetcast/protocol/schema.js';
import { deviceIdParams, errorBody } from '../api-schemas.js';
import { actorOf } from '../auth/guard.js';
import type { DebugRows } from '../telemetry/debug-rows.js';
import type { DebugControl } from './debug-control.js';

export const DEFAULT_DEBUG_ROWS = 10;
export const DEFAULT_DEBUG_MINUTES = 10;

const ms = int({ min: 0 });
export const debugBody = obj({
  rowsPerWindow: optional(int({ min: 1, max: DEBUG_LIMITS.maxRowsPerWindow })),
  minutes: optional(int({ min: 1, max: DEBUG_LIMITS.maxMinutes })),
}, { description: `Raw rows per telemetry window (default ${DEFAULT_DEBUG_ROWS}, at most ${DEBUG_LIMITS.maxRowsPerWindow}) for this many minutes (default ${DEFAULT_DEBUG_MINUTES}, at most ${DEBUG_LIMITS.maxMinutes})` });
export type DebugBody = Infer<typeof debugBody>;

export const debugState = obj({
  deviceId: str(),
  on: bool(),
  rowsPerWindow: nullable(int()),
  startedAt: nullable(ms),
  until: nullable(ms),
  endedAt: nullable(ms),
  actor: nullable(str()),
  counter: int({ min: 0 }),
  delivered: bool(),
});
export const debugDetail = obj({
  ...debugState.shape,
  /** Rows this device sent that no operator asked for (HUB_ERR_DEBUG_NOT_REQUESTED), since the hub started. */
  discardedRows: int({ min: 0 }),
  storedRows: int({ min: 0 }),
  audit: arr(obj({ id: int(), at: ms, deviceId: str(), action: str(), actor: str(), rowsPerWindow: nullable(int()), until: nullable(ms), counter: nullable(int()) })),
  rows: arr(obj({ id: int(), receivedAt: ms, bundleId: sha256Hex(), from: nullable(ms), row: record(json()) })),
});
// Query values arrive as strings (the API's ajv does not coerce types).
const detailQuery = obj({ limit: optional(str({ pattern: /^[1-9][0-9]{0,2}$|^1000$/ })) });

export function registerDebugRoutes(app: FastifyInstance, deps: { control: DebugControl; rows: DebugRows }): void {
  const { control, rows } = deps;
  const errors = { '4xx': errorBody.json, '5xx': errorBody.json };
  app.put('/v1/devices/:id/debug', { config: { access: 'operator', leader: true },
    schema: { summary: 'Turn on debug raw sampling for one device (operator): signed, retained control message; rate-limited', params: deviceIdParams.json, body: debugBody.json, response: { 200: debugState.json, ...errors } },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const b = (req.body ?? {}) as DebugBody;
    return control.turnOn(id, b.rowsPerWindow ?? DEFAULT_DEBUG_ROWS, b.minutes ?? DEFAULT_DEBUG_MINUTES, actorOf(req));
  });
  app.delete('/v1/devices/:id/debug', { config: { access: 'operator', leader: true },
    schema: { summary: 'Turn off debug raw sampling for one device (operator)', params: deviceIdParams.json, response: { 200: debugState.json, ...errors } },
  }, async (req) => control.turnOff((req.params as { id: string }).id, actorOf(req)));
  app.get('/v1/devices/:id/debug', { config: { access: 'auditor' },
    schema: { summary: 'Debug sampling of one device: state, audit trail and the newest raw rows received (auditor)', params: deviceIdParams.json, querystring: detailQuery.json, response: { 200: debugDetail.json, ...errors } },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const limit = Number((req.query as { limit?: string }).limit ?? 100);
    return { ...control.state(id), discardedRows: rows.stats.discardedByDevice[id] ?? 0, storedRows: rows.count(id), audit: control.audit(id), rows: rows.list(id, limit) };
  });
}
