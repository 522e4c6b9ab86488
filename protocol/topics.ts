/**
 * MQTT topic layout. Everything lives under `fc/v1/`; a device speaks only under
 * `fc/v1/dev/<its id>/…` and reads its own assignment plus the shared bundle
 * chunk topics (so that one publish reaches every agent fetching the same bundle,
 * through the broker's fan-out).
 *
 * Device ids and bundle ids never contain `/`, `+` or `#` ([MQTT-4.7.1-1]:
 * wildcards are not allowed in topic names), so every id is one topic level.
 */
import { protocolError } from './errors.js';

export const TOPIC_ROOT = 'fc/v1';
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const BUNDLE_ID_PATTERN = /^[0-9a-f]{64}$/;

/** Messages a device publishes, one topic each. */
export const DEVICE_CHANNELS = ['state', 'event', 'chunk-req', 'telemetry', 'proof-req'] as const;
export type DeviceChannel = (typeof DEVICE_CHANNELS)[number];

function checkDevice(id: string): string {
  if (!DEVICE_ID_PATTERN.test(id)) throw protocolError('PROTO_ERR_BAD_TOPIC', `device id ${JSON.stringify(id)} must match ${DEVICE_ID_PATTERN.source}`);
  return id;
}
function checkBundle(id: string): string {
  if (!BUNDLE_ID_PATTERN.test(id)) throw protocolError('PROTO_ERR_BAD_TOPIC', `bundle id ${JSON.stringify(id)} must be 64 lowercase hex digits`);
  return id;
}

export const topics = {
  /** Hub → device, retained, QoS 1: the signed assignment this device should run. */
  assign: (deviceId: string) => `${TOPIC_ROOT}/dev/${checkDevice(deviceId)}/assign`,
  /** Device → hub. `state` is retained so the hub learns the fleet again after a restart. */
  device: (deviceId: string, channel: DeviceChannel) => `${TOPIC_ROOT}/dev/${checkDevice(deviceId)}/${channel}`,
  /** Hub → every agent fetching this bundle. */
  chunk: (bundleId: string, index: number) => `${TOPIC_ROOT}/bundle/${checkBundle(bundleId)}/chunk/${index}`,
  chunkFilter: (bundleId: string) => `${TOPIC_ROOT}/bundle/${checkBundle(bundleId)}/chunk/+`,
  /** Hub subscriptions: one filter per device channel. */
  allDevices: (channel: DeviceChannel) => `${TOPIC_ROOT}/dev/+/${channel}`,
  /** Hub → every device, retained: the root chain (issue #6, agent/trust.ts). */
  trustRoots: () => `${TOPIC_ROOT}/trust/roots`,
  /** Hub → every device, retained: the latest signed log checkpoint. */
  trustCheckpoint: () => `${TOPIC_ROOT}/trust/checkpoint`,
  /** Hub → one device: the consistency proof it asked for on `proof-req`. */
  proof: (deviceId: string) => `${TOPIC_ROOT}/dev/${checkDevice(deviceId)}/proof`,
  /** Hub → device, retained, QoS 1: the signed operator control message (debug sampling, protocol/control.ts). */
  control: (deviceId: string) => `${TOPIC_ROOT}/dev/${checkDevice(deviceId)}/control`,
} as const;

export type ParsedTopic =
  | { kind: 'assign'; deviceId: string }
  | { kind: 'device'; deviceId: string; channel: DeviceChannel }
  | { kind: 'chunk'; bundleId: string; index: number }
  | { kind: 'proof'; deviceId: string }
  | { kind: 'control'; deviceId: string }
  | { kind: 'trust'; what: 'roots' | 'checkpoint' };

/** Parse a topic name; throws PROTO_ERR_BAD_TOPIC for anything that is not ours. */
export function parseTopic(topic: string): ParsedTopic {
  const parts = topic.split('/');
  if (parts[0] === 'fc' && parts[1] === 'v1') {
    if (parts.length === 5 && parts[2] === 'dev' && DEVICE_ID_PATTERN.test(parts[3])) {
      const ch = parts[4];
      if (ch === 'assign') return { kind: 'assign', deviceId: parts[3] };
      if (ch === 'proof') return { kind: 'proof', deviceId: parts[3] };
      if (ch === 'control') return { kind: 'control', deviceId: parts[3] };
      if ((DEVICE_CHANNELS as readonly string[]).includes(ch)) return { kind: 'device', deviceId: parts[3], channel: ch as DeviceChannel };
    }
    if (parts.length === 4 && parts[2] === 'trust' && (parts[3] === 'roots' || parts[3] === 'checkpoint')) return { kind: 'trust', what: parts[3] };
    if (parts.length === 6 && parts[2] === 'bundle' && BUNDLE_ID_PATTERN.test(parts[3]) && parts[4] === 'chunk' && /^(0|[1-9][0-9]{0,6})$/.test(parts[5])) {
      return { kind: 'chunk', bundleId: parts[3], index: Number(parts[5]) };
    }
  }
  throw protocolError('PROTO_ERR_BAD_TOPIC', `topic ${JSON.stringify(topic.slice(0, 200))}`);
}
