/**
 * What a device may send on each of its channels: the largest payload and
 * whether it may be retained. One table, read by the embedded broker (which
 * refuses a larger or wrongly retained publish before anything is queued,
 * hub/broker-auth.ts), by the hub's inbound queue (hub/mqtt-link.ts) and by
 * the mosquitto configuration the README gives (hub/mosquitto-conf.ts).
 *
 * Only `state` is retained: the hub learns the fleet again from the retained
 * reports after a restart (agent/reporter.ts). Anything else retained would
 * stay pinned in the broker's memory after the device has gone.
 */
import { MESSAGE_LIMITS } from './messages.js';
import type { DeviceChannel } from './topics.js';
import { TRUST_MESSAGE_LIMITS } from './trust-messages.js';

export interface ChannelLimit { readonly maxBytes: number; readonly retain: boolean }

export const DEVICE_CHANNEL_LIMITS: Readonly<Record<DeviceChannel, ChannelLimit>> = Object.freeze({
  state: { maxBytes: MESSAGE_LIMITS.state, retain: true },
  event: { maxBytes: MESSAGE_LIMITS.event, retain: false },
  'chunk-req': { maxBytes: MESSAGE_LIMITS['chunk-req'], retain: false },
  telemetry: { maxBytes: MESSAGE_LIMITS.telemetry, retain: false },
  'proof-req': { maxBytes: TRUST_MESSAGE_LIMITS['proof-req'], retain: false },
});

/**
 * Fixed header, topic, packet id: a PUBLISH's bytes beyond its payload. Topics
 * are at most fc/v1/bundle/<64 hex>/chunk/<7 digits> or fc/v1/dev/<128>/<channel>.
 */
const PUBLISH_OVERHEAD = 512;

/** The largest MQTT packet a device ever needs to send (its largest message); a CONNECT fits too. */
export const DEVICE_MAX_PACKET_BYTES = Math.max(...Object.values(DEVICE_CHANNEL_LIMITS).map((l) => l.maxBytes)) + PUBLISH_OVERHEAD;

/** The largest packet the hub sends: an assignment at its limit (bundle chunks are at most 4 MiB, the root chain 4 MiB). */
export const HUB_MAX_PACKET_BYTES = MESSAGE_LIMITS.assign + PUBLISH_OVERHEAD;
