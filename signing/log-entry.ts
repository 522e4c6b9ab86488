/**
 * What a transparency-log leaf says. Each leaf is the UTF-8 JSON of one entry,
 * stored and hashed as exact bytes (RFC 9162 2.1.1 hashes leaf data, not a
 * re-serialisation). Roots and manifests carry their signed envelopes, so an
 * auditor checks the release and root signatures from the leaf alone; the
 * checkpoint signature covers everything else.
 */
import { envelopeSchema } from '@fleetcast/protocol/envelope.js';
import { arr, int, json, nullable, obj, parse, sha256Hex, str, union, literal, type Infer } from '@fleetcast/protocol/schema.js';
import { DEVICE_ID_PATTERN } from '@fleetcast/protocol/topics.js';

export const rootEntrySchema = obj({ kind: literal('root'), version: int({ min: 1 }), envelope: envelopeSchema });
export const manifestEntrySchema = obj({ kind: literal('manifest'), bundleId: sha256Hex(), envelope: envelopeSchema });
/** The hub assigned a bundle to devices: what makes an install legitimate. */
export const deploymentEntrySchema = obj({
  kind: literal('deployment'),
  bundleId: sha256Hex(),
  name: str({ max: 64 }),
  version: int({ min: 1 }),
  devices: arr(str({ pattern: DEVICE_ID_PATTERN }), { min: 1, max: 1_000_000 }),
  rolloutId: nullable(str({ max: 128 })),
  ring: nullable(str({ max: 64 })),
  /** Who asked for it: an API token id, "api" without HTTP auth, or "engine" for automatic steps. */
  actor: str({ max: 256 }),
  at: int({ min: 0 }),
});
/** A rollout decision from hub/rollouts (start, promote, halt, …), as its canonical record. */
export const decisionEntrySchema = obj({ kind: literal('rollout-decision'), record: json() });

/**
 * Installs devices reported that the hub found consistent with what it assigned them, batched: the
 * hub's checkpoint signature is what makes "this model ran on this device from then" evidence. What a
 * device claims beyond its assignments is never logged (it is kept apart as an unverified claim).
 */
export const installRecordSchema = obj({
  deviceId: str({ pattern: DEVICE_ID_PATTERN }),
  bundleId: sha256Hex(),
  /** The assignment counter the device installed under. */
  counter: int({ min: 0 }),
  /** When the device says it installed (its clock), and when the hub received the report (the hub's). */
  at: int({ min: 0 }),
  receivedAt: int({ min: 0 }),
  /** The device's event sequence number (with deviceId, names the report). */
  seq: int({ min: 0 }),
});
export const installsEntrySchema = obj({ kind: literal('installs'), at: int({ min: 0 }), installs: arr(installRecordSchema, { min: 1, max: 10_000 }) });
export type InstallRecord = Infer<typeof installRecordSchema>;

export const logEntrySchema = union(rootEntrySchema, manifestEntrySchema, deploymentEntrySchema, decisionEntrySchema, installsEntrySchema);
export type LogEntry = Infer<typeof logEntrySchema>;
export type DeploymentEntry = Infer<typeof deploymentEntrySchema>;

export function encodeEntry(e: LogEntry): Buffer {
  return Buffer.from(JSON.stringify(e), 'utf8');
}

/** Parse leaf bytes; throws PROTO_ERR_INVALID_MESSAGE naming what is wrong. */
export function decodeEntry(bytes: Uint8Array, what = 'log entry'): LogEntry {
  return parse(logEntrySchema, JSON.parse(Buffer.from(bytes).toString('utf8')), { what });
}
