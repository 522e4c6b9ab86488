/**
 * Who may publish and subscribe to what (issue #6), from the topic layout in
 * protocol/topics.ts: a device publishes only under fc/v1/dev/<its id>/ on the
 * channels it speaks, and reads only its own assignment, proof answers and
 * operator control (debug sampling),
 * the shared bundle chunk topics (one publish reaches every fetcher), and the
 * trust topics. The hub may do anything under fc/v1/. The same rules as a
 * mosquitto ACL file are in mosquittoAcl() (README "External broker").
 */
import { DEVICE_CHANNEL_LIMITS, DEVICE_MAX_PACKET_BYTES, HUB_MAX_PACKET_BYTES } from '@fleetcast/protocol/channel-limits.js';
import { BUNDLE_ID_PATTERN, DEVICE_CHANNELS, TOPIC_ROOT, type DeviceChannel } from '@fleetcast/protocol/topics.js';
import { HUB_MQTT_USER, type MqttIdentity } from './mqtt-credentials.js';

const DEVICE_SUBSCRIBE = ['assign', 'proof', 'control'] as const;

export function mayPublish(who: MqttIdentity, topic: string): boolean {
  if (who.role === 'hub') return topic.startsWith(`${TOPIC_ROOT}/`);
  const p = topic.split('/');
  return p.length === 5 && `${p[0]}/${p[1]}` === TOPIC_ROOT && p[2] === 'dev' && p[3] === who.username && (DEVICE_CHANNELS as readonly string[]).includes(p[4]);
}

/**
 * Why a device's publish on its own channel is refused (payload over the
 * channel's limit, or retained where the protocol retains nothing), or
 * undefined. Checked on top of mayPublish; the hub's own publishes are not limited here.
 */
export function publishProblem(who: MqttIdentity, topic: string, bytes: number, retain: boolean): string | undefined {
  if (who.role === 'hub') return undefined;
  const limit = DEVICE_CHANNEL_LIMITS[topic.slice(topic.lastIndexOf('/') + 1) as DeviceChannel];
  if (!limit) return undefined;
  if (bytes > limit.maxBytes) return `a ${bytes}-byte payload is over the channel's limit of ${limit.maxBytes}`;
  if (retain && !limit.retain) return 'this channel is never retained';
  return undefined;
}

/** The largest MQTT packet this client may send; unknown clients (before CONNECT is accepted) are held to a device's. */
export function maxPacketBytes(who: MqttIdentity | undefined): number {
  return who?.role === 'hub' ? HUB_MAX_PACKET_BYTES : DEVICE_MAX_PACKET_BYTES;
}

export function maySubscribe(who: MqttIdentity, filter: string): boolean {
  if (who.role === 'hub') return filter.startsWith(`${TOPIC_ROOT}/`);
  const p = filter.split('/');
  if (`${p[0]}/${p[1]}` !== TOPIC_ROOT) return false;
  if (p.length === 5 && p[2] === 'dev' && p[3] === who.username) return (DEVICE_SUBSCRIBE as readonly string[]).includes(p[4]);
  if (p.length === 6 && p[2] === 'bundle' && BUNDLE_ID_PATTERN.test(p[3]) && p[4] === 'chunk') return p[5] === '+' || /^(0|[1-9][0-9]{0,6})$/.test(p[5]);
  return p.length === 4 && p[2] === 'trust' && (p[3] === 'roots' || p[3] === 'checkpoint');
}

/** The same rules for mosquitto (`acl_file`); %u is the user name, which must be the device id. */
export function mosquittoAcl(hubUser = HUB_MQTT_USER): string {
  return [
    `user ${hubUser}`,
    `topic readwrite ${TOPIC_ROOT}/#`,
    '',
    ...DEVICE_CHANNELS.map((c) => `pattern write ${TOPIC_ROOT}/dev/%u/${c}`),
    ...DEVICE_SUBSCRIBE.map((c) => `pattern read ${TOPIC_ROOT}/dev/%u/${c}`),
    `pattern read ${TOPIC_ROOT}/bundle/+/chunk/+`,
    `pattern read ${TOPIC_ROOT}/trust/roots`,
    `pattern read ${TOPIC_ROOT}/trust/checkpoint`,
  ].join('\n') + '\n';
}
