/**
 * Request and response shapes of the hub's HTTP API, written once in the
 * protocol schema language: fastify validates with their JSON Schema and the
 * OpenAPI document is generated from the same objects, so the document is the
 * API that runs.
 */
import { envelopeSchema } from '@fleetcast/protocol/envelope.js';
import { manifestSchema } from '@fleetcast/protocol/manifest.js';
import { deviceEventSchema, stateReportSchema } from '@fleetcast/protocol/messages.js';
import { arr, bool, int, json, literal, nullable, obj, optional, record, sha256Hex, str, type Infer } from '@fleetcast/protocol/schema.js';
import { DEVICE_ID_PATTERN } from '@fleetcast/protocol/topics.js';

export const errorBody = obj({
  error: obj({ code: str(), message: str(), details: optional(record(json())) }),
}, { description: 'A coded error; `code` is listed in docs/errors.md' });

const bundleName = str({ pattern: /^[a-z0-9][a-z0-9._-]{0,63}$/ });
const deviceId = str({ pattern: DEVICE_ID_PATTERN });

export const bundleIdParams = obj({ id: sha256Hex() });
export const deviceIdParams = obj({ id: deviceId });

export const publishResult = obj({ bundleId: sha256Hex(), name: bundleName, version: int({ min: 1 }), created: bool() });

export const bundleSummary = obj({
  bundleId: sha256Hex(),
  name: bundleName,
  version: int({ min: 1 }),
  compressedLength: int({ min: 0 }),
  rawLength: int({ min: 0 }),
  chunkSize: int({ min: 1 }),
  chunkCount: int({ min: 0 }),
  createdAt: int({ min: 0 }),
});
export type BundleSummary = Infer<typeof bundleSummary>;
export const bundleList = obj({ bundles: arr(bundleSummary) });
export const bundleDetail = obj({ ...bundleSummary.shape, manifest: manifestSchema, envelope: envelopeSchema });

export const deployBody = obj({
  name: bundleName,
  version: int({ min: 1 }),
  /** Every device that has reported its state to the hub. */
  all: optional(literal(true)),
  devices: optional(arr(deviceId, { min: 1, max: 100_000 })),
  rolloutId: optional(nullable(str({ max: 128 }))),
  ring: optional(nullable(str({ max: 64 }))),
  /** Assign to ids the hub has never seen (no state report, no enrollment); without it they are refused with HUB_ERR_UNKNOWN_DEVICE. */
  allowUnknown: optional(bool()),
}, { description: 'Give exactly one of `all: true` or `devices`' });
export type DeployBody = Infer<typeof deployBody>;
export const deployResult = obj({ bundleId: sha256Hex(), devices: arr(deviceId), counters: record(int({ min: 1 })) });

const modelRef = obj({ bundleId: sha256Hex(), name: str(), version: int({ min: 1 }) });
export const deviceSummary = obj({
  id: deviceId,
  active: nullable(modelRef),
  phase: str(),
  lastError: nullable(str()),
  firstSeen: int({ min: 0 }),
  lastSeen: int({ min: 0 }),
  /** Heard from within the hub's onlineWindowMs (three agent heartbeats by default). */
  online: bool(),
  /** Ring of the device's current assignment (a rollout's ring, or the deployment's), else null. */
  ring: nullable(str()),
  /** capabilities.tags from the device's state report (rollout rings can select by them). */
  tags: arr(str()),
  assignment: nullable(obj({ bundleId: sha256Hex(), name: str(), version: int({ min: 1 }), counter: int({ min: 1 }), expiresAt: int({ min: 0 }) })),
  /** Issue #5: debug raw sampling, when an operator has it on for this device (hub/debug/). */
  debug: optional(nullable(obj({ rowsPerWindow: int({ min: 1 }), until: int({ min: 0 }) }))),
});
export type DeviceSummary = Infer<typeof deviceSummary>;
export const deviceList = obj({
  devices: arr(deviceSummary),
  /** Devices matching the filters, over all pages. */
  total: int({ min: 0 }),
  /** Pass as `after` for the next page; null on the last one. */
  next: nullable(deviceId),
});
/**
 * A filter's text: no control characters. PostgreSQL refuses a NUL byte in a text parameter (SQLite
 * takes it), so without this `?q=%00` was a 500 on one engine; no device id, tag, ring or phase holds one.
 */
export const filterText = (o: { min?: number; max: number }) => str({ ...o, pattern: /^[^\u0000-\u001f\u007f]*$/ });
export const deviceListQuery = obj({
  state: optional(str({ enum: ['online', 'offline'] })),
  /** NAME@VERSION of the active model (`none` for devices without one). */
  version: optional(filterText({ max: 128 })),
  /** Devices whose tags include this one. */
  tag: optional(filterText({ min: 1, max: 64 })),
  /** Ring of the current assignment (`none`: no ring). */
  ring: optional(filterText({ min: 1, max: 64 })),
  /** Install phase of the last state report. */
  phase: optional(filterText({ min: 1, max: 32 })),
  /** Part of the device id. */
  q: optional(filterText({ max: 128 })),
  /** Page size, 1 to 1000; without it every matching device is returned (the CLI's `devices list`). */
  limit: optional(str({ pattern: /^[1-9][0-9]{0,3}$/ })),
  /** The `next` of the previous page. */
  after: optional(deviceId),
});
export const fleetSummary = obj({
  total: int({ min: 0 }),
  online: int({ min: 0 }),
  byVersion: record(int({ min: 0 })),
  byRing: record(int({ min: 0 })),
  byPhase: record(int({ min: 0 })),
});
export type FleetSummary = Infer<typeof fleetSummary>;
export type DeviceListQuery = Infer<typeof deviceListQuery>;
export const deviceDetail = obj({ ...deviceSummary.shape, state: stateReportSchema, events: arr(deviceEventSchema) });

export const health = obj({
  ok: bool(),
  // faults/restarts: embedded broker faults contained and restarts done since start (hub/broker.ts).
  broker: obj({ url: str(), embedded: bool(), connected: bool(), faults: optional(int({ min: 0 })), restarts: optional(int({ min: 0 })) }),
  bundles: int({ min: 0 }),
  devices: int({ min: 0 }),
  messages: obj({ handled: record(int()), rejected: record(int()) }),
  transfer: record(int()),
});
export type HealthBody = Infer<typeof health>;
