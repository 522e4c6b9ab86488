/**
 * Every message hub and agent exchange over MQTT, one schema each. Both sides
 * call `decode*` on what they receive; nothing else parses message bytes.
 */
import { envelopeSchema } from './envelope.js';
import { protocolError } from './errors.js';
import { arr, int, nullable, num, obj, optional, parse, record, sha256Hex, str, json, type Infer, type Schema } from './schema.js';
import { DEVICE_ID_PATTERN } from './topics.js';
import { telemetryReportSchema, type TelemetryReport } from './telemetry.js';
import { decodeTelemetryBinary, encodeTelemetryBinary, isBinaryTelemetry } from './telemetry-binary.js';

export const PROTOCOL_VERSION = 1;
const v = int({ min: 1, max: 1 });
const deviceId = str({ pattern: DEVICE_ID_PATTERN });
const millis = int({ min: 0 });

/** What the hub signs for one device: run this bundle. */
export const assignmentSchema = obj({
  type: str({ enum: ['fleetcast.assignment/v1'] as const }),
  deviceId,
  bundleId: sha256Hex(),
  name: str({ max: 64 }),
  version: int({ min: 1 }),
  rolloutId: nullable(str({ max: 128 })),
  ring: nullable(str({ max: 64 })),
  /** Strictly increasing per device; an agent refuses a counter it has passed. */
  counter: int({ min: 1 }),
  issuedAt: millis,
  expiresAt: millis,
  /**
   * The root version the hub signed under. A device that reset its counter when a
   * root revoked a hub key refuses anything signed under an older root, so a recorded
   * message signed by a key that survived the revocation cannot be replayed into the
   * emptied counter space. Absent in messages from older hubs: read as 0.
   */
  rootVersion: optional(int({ min: 1 })),
});
export type Assignment = Infer<typeof assignmentSchema>;

/** Hub → device on `assign`: the hub-signed assignment and the release-signed manifest it names. */
export const assignMessageSchema = obj({ v, assignment: envelopeSchema, manifest: envelopeSchema });
export type AssignMessage = Infer<typeof assignMessageSchema>;

/** Device → hub: please publish these chunks (again) on the bundle's chunk topic. */
export const chunkRequestSchema = obj({ v, deviceId, bundleId: sha256Hex(), chunks: arr(int({ min: 0, max: 9_999_999 }), { min: 1, max: 100_000 }) });
export type ChunkRequest = Infer<typeof chunkRequestSchema>;

export const PHASES = ['idle', 'fetching', 'verifying', 'staging', 'swapping', 'probation', 'committed', 'rolled-back', 'failed'] as const;
export type Phase = (typeof PHASES)[number];
/**
 * Phases of an install under way: the device is between accepting an assignment and swapping the
 * new model in. The agent resumes these when the assignment is delivered again; the hub does not
 * count a failure reported in one of them as final. One list for both (agent/install-table.ts
 * is the flow itself).
 */
export const IN_FLIGHT_PHASES = ['fetching', 'verifying', 'staging', 'swapping'] as const satisfies readonly Phase[];
export type InFlightPhase = (typeof IN_FLIGHT_PHASES)[number];

const modelRef = obj({ bundleId: sha256Hex(), name: str({ max: 64 }), version: int({ min: 1 }) });
export type ModelRef = Infer<typeof modelRef>;

/** Device → hub, retained: what the device really runs and is doing. */
export const stateReportSchema = obj({
  v,
  deviceId,
  seq: int({ min: 0 }),
  at: millis,
  agentVersion: str({ max: 64 }),
  runtime: str({ max: 64 }),
  active: nullable(modelRef),
  previous: nullable(modelRef),
  phase: str({ enum: PHASES }),
  target: nullable(obj({ bundleId: sha256Hex(), counter: int({ min: 1 }) })),
  progress: nullable(obj({ have: int({ min: 0 }), total: int({ min: 0 }) })),
  lastError: nullable(obj({ code: str({ max: 64 }), at: millis, bundleId: optional(sha256Hex()) })),
  counter: int({ min: 0 }),
  capabilities: record(json(), { maxKeys: 64 }),
  /** Optional predict-path health of the active bundle (agent/health.ts), read by the rollout gates. */
  health: optional(obj({
    bundleId: sha256Hex(),
    requests: int({ min: 0 }),
    errors: int({ min: 0 }),
    nanOutputs: int({ min: 0 }),
    p95Ms: nullable(num({ min: 0 })),
  })),
});
export type StateReport = Infer<typeof stateReportSchema>;

export const EVENT_KINDS = ['assignment-accepted', 'assignment-rejected', 'fetch-started', 'fetch-failed', 'verify-failed', 'stage-failed', 'installed', 'rolled-back', 'security'] as const;
/** Device → hub: something happened (codes, not prose). */
export const deviceEventSchema = obj({
  v,
  deviceId,
  seq: int({ min: 0 }),
  at: millis,
  kind: str({ enum: EVENT_KINDS }),
  code: optional(str({ max: 64 })),
  bundleId: optional(sha256Hex()),
  counter: optional(int({ min: 0 })),
  detail: optional(str({ max: 1024 })),
});
export type DeviceEvent = Infer<typeof deviceEventSchema>;

/** Size limits per message type, checked before JSON.parse. */
export const MESSAGE_LIMITS = {
  assign: 8 * 1024 * 1024,
  'chunk-req': 1024 * 1024,
  state: 64 * 1024,
  event: 16 * 1024,
  telemetry: 256 * 1024,
} as const;

/** Decode JSON bytes against a schema with a size cap; throws coded errors only. */
export function decodeJson<T>(schema: Schema<T>, bytes: Uint8Array | string, maxBytes: number, what: string): T {
  const len = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
  if (len > maxBytes) throw protocolError('PROTO_ERR_MESSAGE_TOO_LARGE', `${what} is ${len} bytes, limit ${maxBytes}`);
  let value: unknown;
  try {
    value = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw protocolError('PROTO_ERR_INVALID_JSON', what);
  }
  return parse(schema, value, { what });
}

export const decodeAssignMessage = (b: Uint8Array | string) => decodeJson(assignMessageSchema, b, MESSAGE_LIMITS.assign, 'assign message');
export const decodeChunkRequest = (b: Uint8Array | string) => decodeJson(chunkRequestSchema, b, MESSAGE_LIMITS['chunk-req'], 'chunk request');
export const decodeStateReport = (b: Uint8Array | string) => decodeJson(stateReportSchema, b, MESSAGE_LIMITS.state, 'state report');
export const decodeDeviceEvent = (b: Uint8Array | string) => decodeJson(deviceEventSchema, b, MESSAGE_LIMITS.event, 'device event');
/** A telemetry report in either form: binary (first byte 0xFC, protocol/telemetry-binary.ts, what agents send) or JSON. */
export function decodeTelemetry(b: Uint8Array | string): TelemetryReport {
  if (!isBinaryTelemetry(b)) return decodeJson(telemetryReportSchema, b, MESSAGE_LIMITS.telemetry, 'telemetry report');
  return decodeTelemetryBinary(telemetryBytes(b));
}

/**
 * A telemetry message as binary bytes, size-checked: binary is passed through (its full check is the
 * binary decode), JSON is decoded against the schema and re-encoded, so the hub has one ingest path.
 */
export function telemetryBytes(b: Uint8Array): Uint8Array {
  if (b.byteLength > MESSAGE_LIMITS.telemetry) throw protocolError('PROTO_ERR_MESSAGE_TOO_LARGE', `telemetry report is ${b.byteLength} bytes, limit ${MESSAGE_LIMITS.telemetry}`);
  return isBinaryTelemetry(b) ? b : encodeTelemetryBinary(decodeJson(telemetryReportSchema, b, MESSAGE_LIMITS.telemetry, 'telemetry report'));
}

export function encode(msg: unknown): Buffer {
  return Buffer.from(JSON.stringify(msg), 'utf8');
}
