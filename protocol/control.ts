/**
 * Operator control of one device (issue #5, debug raw sampling): the hub
 * signs, online, a control payload with its hub key (DSSE, like assignments)
 * and publishes it RETAINED at QoS 1 on `fc/v1/dev/<id>/control`, so a device
 * that is offline picks it up when it reconnects. Raw feature values leave a
 * device only while such a payload, verified against its trusted root, says so.
 *
 * Freshness: `expiresAt` (the agent refuses an expired payload) and a counter
 * strictly increasing per device (the agent refuses one below the last it
 * applied; the same one again is the retained copy re-delivered). `debug.until`
 * makes sampling end on the device by itself even if the hub never says so.
 */
import { envelopeSchema } from './envelope.js';
import { decodeJson } from './messages.js';
import { int, literal, nullable, obj, optional, str, type Infer } from './schema.js';
import { DEVICE_ID_PATTERN } from './topics.js';

/** Hard bounds a device accepts, whatever a hub asks (the hub's own limits are lower or equal). */
export const DEBUG_LIMITS = { maxRowsPerWindow: 100, maxMinutes: 60 } as const;

const millis = int({ min: 0 });

/** What the hub signs for one device. */
export const controlPayloadSchema = obj({
  type: literal('fleetcast.control/v1'),
  deviceId: str({ pattern: DEVICE_ID_PATTERN }),
  /** Strictly increasing per device (the hub uses max(last + 1, now in ms), so a restored hub database cannot go back). */
  counter: int({ min: 1 }),
  issuedAt: millis,
  expiresAt: millis,
  /** Debug raw sampling: on until `until` (ms), or null = off. */
  debug: nullable(obj({ rowsPerWindow: int({ min: 1, max: DEBUG_LIMITS.maxRowsPerWindow }), until: millis })),
  /** The root version the hub signed under; a device that reset its counters at a newer root refuses it (as for assignments). Absent: 0. */
  rootVersion: optional(int({ min: 1 })),
});
export type ControlPayload = Infer<typeof controlPayloadSchema>;

/** Hub → device on `control`: the hub-signed envelope. */
export const controlMessageSchema = obj({ v: int({ min: 1, max: 1 }), control: envelopeSchema });
export type ControlMessage = Infer<typeof controlMessageSchema>;

export const CONTROL_MESSAGE_LIMIT = 16 * 1024;

export const decodeControlMessage = (b: Uint8Array | string) => decodeJson(controlMessageSchema, b, CONTROL_MESSAGE_LIMIT, 'control message');
