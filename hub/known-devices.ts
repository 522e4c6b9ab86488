/**
 * Which device ids the hub knows: those that have reported their state (the
 * registry) or hold an active MQTT credential (enrolled, perhaps not yet
 * connected). A deployment or a rollout ring naming any other id is refused
 * unless the caller says `allowUnknown`: a typo in an id would otherwise sign
 * an assignment no device ever takes, and the operator would see "assigned".
 */
import type { HubStore } from './store.js';
import { hubError } from './errors.js';
import { MqttCredentials } from './mqtt-credentials.js';

export function unknownDeviceIds(store: Pick<HubStore, 'getDevice' | 'db'>, ids: readonly string[]): string[] {
  const creds = new MqttCredentials(store.db);
  return [...new Set(ids)].filter((id) => !store.getDevice(id) && !creds.isEnrolled(id));
}

/** Throws HUB_ERR_UNKNOWN_DEVICE listing (up to 20 of) the unknown ids in the message and all of them in details.unknown. */
export function refuseUnknownDevices(store: Pick<HubStore, 'getDevice' | 'db'>, ids: readonly string[], where: string): void {
  const unknown = unknownDeviceIds(store, ids);
  if (unknown.length === 0) return;
  const shown = unknown.slice(0, 20).join(', ') + (unknown.length > 20 ? `, … (${unknown.length} in all)` : '');
  throw hubError('HUB_ERR_UNKNOWN_DEVICE', `${where} names ${unknown.length} device id(s) the hub has never seen and that are not enrolled: ${shown}; pass allowUnknown: true (fleetcast --allow-unknown) if that is meant`, { unknown });
}
