/**
 * Drift over HTTP: the report `fleetcast drift report` prints, the alert
 * events, and per-device telemetry counters (last seq, reports the device had
 * to drop while offline).
 *
 * `since` / `until` are epoch milliseconds, or a duration back from now
 * (`90s`, `15m`, `2h`, `7d`).
 */
import type { FastifyInstance } from 'fastify';
import { obj, optional, str } from '@fleetcast/protocol/schema.js';
import { errorBody, filterText } from '../api-schemas.js';
import { hubError } from '../errors.js';
import type { HubStore } from '../store.js';
import type { TelemetryService } from '../telemetry/service.js';

const TIME = /^(?:[0-9]{1,15}|[0-9]{1,9}(?:ms|s|m|h|d))$/;
const UNIT: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Epoch ms, or a duration back from `now`; throws HUB_ERR_BAD_REQUEST. */
export function parseTime(v: string, now: number, what: string): number {
  const m = /^([0-9]+)(ms|s|m|h|d)?$/.exec(v);
  if (!m || !TIME.test(v)) throw hubError('HUB_ERR_BAD_REQUEST', `${what} must be epoch milliseconds or a duration such as 15m, 2h or 7d, got ${JSON.stringify(v.slice(0, 40))}`);
  return m[2] ? now - Number(m[1]) * UNIT[m[2]] : Number(m[1]);
}

const DECIMAL = /^(0|[1-9][0-9]{0,8})(\.[0-9]{1,12})?$/;

const reportQuery = obj({
  ring: optional(filterText({ min: 1, max: 64 })),
  since: optional(str({ max: 32 })),
  until: optional(str({ max: 32 })),
  // A query string carries text, and the API coerces no types (hub/api.ts): numbers are decimal strings, read here.
  psi: optional(str({ pattern: DECIMAL })),
  wasserstein: optional(str({ pattern: DECIMAL })),
  minN: optional(str({ pattern: /^[1-9][0-9]{0,8}$/ })),
});

export function registerDriftRoutes(app: FastifyInstance, deps: { telemetry: TelemetryService; store: HubStore; now: () => number }): void {
  const { telemetry, store } = deps;
  const errors = { '4xx': errorBody.json, '5xx': errorBody.json };

  app.get('/v1/drift/:name/:version', { config: { access: 'auditor' },
    schema: {
      summary: 'Drift report of NAME@VERSION: every feature and output per ring against the signed reference and against the previous version, worst first',
      params: obj({ name: str({ pattern: /^[a-z0-9][a-z0-9._-]{0,63}$/ }), version: str({ pattern: /^[1-9][0-9]{0,9}$/ }) }).json,
      querystring: reportQuery.json,
      response: { ...errors },
    },
  }, async (req) => {
    const p = req.params as { name: string; version: string };
    const q = req.query as { ring?: string; since?: string; until?: string; psi?: string; wasserstein?: string; minN?: string };
    const b = store.getBundleByVersion(p.name, Number(p.version));
    if (!b) throw hubError('HUB_ERR_UNKNOWN_BUNDLE', `${p.name}@${p.version}`);
    const now = deps.now();
    const thresholds = {
      ...(q.psi !== undefined ? { psi: Number(q.psi) } : {}), ...(q.wasserstein !== undefined ? { wasserstein: Number(q.wasserstein) } : {}), ...(q.minN !== undefined ? { minN: Number(q.minN) } : {}),
    };
    return telemetry.report({
      bundleId: b.id, ...(q.ring ? { ring: q.ring } : {}),
      ...(q.since ? { since: parseTime(q.since, now, 'since') } : {}),
      ...(q.until ? { until: parseTime(q.until, now, 'until') } : {}),
      thresholds,
    });
  });

  app.get('/v1/drift-events', { config: { access: 'auditor' },
    schema: { summary: 'Drift alerts raised and cleared, newest first', querystring: obj({ bundleId: optional(str({ pattern: /^[0-9a-f]{64}$/ })), limit: optional(str({ pattern: /^[1-9][0-9]{0,3}$/ })) }).json, response: { ...errors } },
  }, async (req) => {
    const q = req.query as { bundleId?: string; limit?: string };
    return { events: telemetry.telemetry.driftEvents(q.bundleId, q.limit ? Number(q.limit) : 100) };
  });

  app.get('/v1/telemetry/devices', { config: { access: 'auditor' },
    schema: { summary: 'Per device: last telemetry seq, reports dropped from its offline buffer, last report time', response: { ...errors } },
  }, async () => ({ devices: telemetry.deviceStats(), ingest: telemetry.pool ? { ...telemetry.pool.stats, workers: telemetry.options.ingestWorkers } : telemetry.ingest.stats }));
}
