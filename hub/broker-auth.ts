/**
 * Access control for the embedded aedes broker (issue #6): authenticate
 * every CONNECT against MqttCredentials, and authorise every PUBLISH and
 * SUBSCRIBE with broker-acl.ts. A device's MQTT client id must be its user
 * name, so one device cannot take over another's session. A refused publish
 * disconnects the client (aedes, MQTT 3.1.1 has no negative PUBACK); a refused
 * subscription is granted as 0x80 [MQTT-3.9.3-2], which the agent treats as an error.
 */
import type { Aedes, Client } from 'aedes';
import type { Logger } from 'pino';
import { mayPublish, maySubscribe } from './broker-acl.js';
import type { MqttCredentials, MqttIdentity } from './mqtt-credentials.js';

export interface BrokerAuthStats { refusedConnects: number; refusedPublishes: number; refusedSubscribes: number }

/**
 * `mayReadBundle` (hub/transfer-grants.ts) narrows the chunk topics a device may subscribe to: only those of
 * bundles it is assigned, so it cannot read another device's transfer as it goes by on the shared topics.
 */
export function installBrokerAuth(aedes: Aedes, creds: MqttCredentials, logger?: Logger, mayReadBundle?: (deviceId: string, bundleId: string) => boolean): BrokerAuthStats {
  const who = new WeakMap<Client, MqttIdentity>();
  const stats: BrokerAuthStats = { refusedConnects: 0, refusedPublishes: 0, refusedSubscribes: 0 };
  aedes.authenticate = (client, username, password, done) => {
    let id: MqttIdentity | undefined;
    try { id = creds.check(username, password); } catch (e) { logger?.error({ err: e }, 'checking an MQTT credential failed'); }
    if (id && id.role === 'device' && client.id !== id.username) id = undefined;
    if (!id) {
      stats.refusedConnects++;
      logger?.warn({ code: 'HUB_ERR_MQTT_AUTH', clientId: String(client.id).slice(0, 128), username: username?.slice(0, 128) }, 'refused an MQTT connection: unknown user, wrong secret, or client id is not the device id');
      const err = Object.assign(new Error('bad user name or password'), { returnCode: 4 });
      done(err as Parameters<typeof done>[0], false);
      return;
    }
    who.set(client, id);
    done(null, true);
  };
  aedes.authorizePublish = (client, packet, cb) => {
    const id = client ? who.get(client) : undefined;
    if (id && mayPublish(id, packet.topic)) { cb(null); return; }
    stats.refusedPublishes++;
    logger?.warn({ code: 'HUB_ERR_MQTT_FORBIDDEN', user: id?.username, topic: packet.topic.slice(0, 200) }, 'refused an MQTT publish');
    cb(new Error(`not allowed to publish on ${packet.topic}`));
  };
  aedes.authorizeSubscribe = (client, sub, cb) => {
    const id = who.get(client);
    const p = sub.topic.split('/');
    const bundleOk = id?.role !== 'device' || !mayReadBundle || p[2] !== 'bundle' || mayReadBundle(id.username, p[3]);
    if (id && maySubscribe(id, sub.topic) && bundleOk) { cb(null, sub); return; }
    stats.refusedSubscribes++;
    logger?.warn({ code: 'HUB_ERR_MQTT_FORBIDDEN', user: id?.username, filter: sub.topic.slice(0, 200) }, 'refused an MQTT subscription');
    cb(null, null);
  };
  return stats;
}
