/**
 * Access control for the embedded aedes broker (issue #6): authenticate
 * every CONNECT against MqttCredentials, and authorise every PUBLISH and
 * SUBSCRIBE with broker-acl.ts. A device's MQTT client id must be its user
 * name, so one device cannot take over another's session, and no device may
 * use a client id the hub has connected with, nor ask for a persistent
 * session (clean: false). A refused publish
 * disconnects the client (aedes, MQTT 3.1.1 has no negative PUBACK); a refused
 * subscription is granted as 0x80 [MQTT-3.9.3-2], which the agent treats as an error.
 *
 * Credentials are checked again on every publish and subscribe (the one they
 * connected with must still be the user's, unrevoked), and a revocation or
 * re-enrollment ends the live session at once: in this process through
 * MqttCredentials.onChange, from the `fleetcast device` CLI through SQLite's
 * data_version, polled every REVALIDATE_MS.
 */
import type { Aedes, Client } from 'aedes';
import type { Logger } from 'pino';
import { maxPacketBytes, mayPublish, maySubscribe, publishProblem } from './broker-acl.js';
import type { MqttCredentials, MqttIdentity } from './mqtt-credentials.js';

export interface BrokerAuthStats { refusedConnects: number; refusedPublishes: number; refusedSubscribes: number; endedSessions: number }

/** How often another process's credential change is looked for (one PRAGMA read). */
export const REVALIDATE_MS = 500;

export interface BrokerAuth {
  stats: BrokerAuthStats;
  /** The largest packet this client may send (the broker cuts it at the length field, hub/broker.ts). */
  packetLimit(client: Client): number;
}

/**
 * `mayReadBundle` (hub/transfer-grants.ts) narrows the chunk topics a device may subscribe to: only those of
 * bundles it is assigned, so it cannot read another device's transfer as it goes by on the shared topics.
 */
export function installBrokerAuth(aedes: Aedes, creds: MqttCredentials, logger?: Logger, mayReadBundle?: (deviceId: string, bundleId: string) => boolean): BrokerAuth {
  const who = new WeakMap<Client, MqttIdentity>();
  const hubClientIds = new Set<string>();
  const stats: BrokerAuthStats = { refusedConnects: 0, refusedPublishes: 0, refusedSubscribes: 0, endedSessions: 0 };
  aedes.authenticate = (client, username, password, done) => {
    let id: MqttIdentity | undefined;
    try { id = creds.check(username, password); } catch (e) { logger?.error({ err: e }, 'checking an MQTT credential failed'); }
    if (id && id.role === 'device' && (client.id !== id.username || hubClientIds.has(client.id))) id = undefined;
    // No persistent session for a device: aedes would queue every QoS 1 message on its subscriptions while it is
    // away, in memory and without a bound, and restore those subscriptions later without authorizeSubscribe
    // (a chunk topic would stay readable after its grant ended). Agents always connect clean.
    if (id && id.role === 'device' && client.clean === false) {
      stats.refusedConnects++;
      logger?.warn({ code: 'HUB_ERR_MQTT_AUTH', clientId: String(client.id).slice(0, 128), username: username?.slice(0, 128) }, 'refused an MQTT connection: a device must connect with a clean session (clean: true); the broker keeps no session or queue for a device that is away');
      done(Object.assign(new Error('not authorized: a device must connect with a clean session'), { returnCode: 5 }) as Parameters<typeof done>[0], false);
      return;
    }
    if (!id) {
      stats.refusedConnects++;
      logger?.warn({ code: 'HUB_ERR_MQTT_AUTH', clientId: String(client.id).slice(0, 128), username: username?.slice(0, 128) }, 'refused an MQTT connection: unknown user, wrong secret, or client id is not the device id');
      const err = Object.assign(new Error('bad user name or password'), { returnCode: 4 });
      done(err as Parameters<typeof done>[0], false);
      return;
    }
    if (id.role === 'hub') hubClientIds.add(client.id);
    who.set(client, id);
    done(null, true);
  };
  /** The identity, if its credential is still current; otherwise the session is ended. */
  const current = (client: Client | null): MqttIdentity | undefined => {
    const id = client ? who.get(client) : undefined;
    if (!id) return undefined;
    // A store that cannot answer refuses this one operation; only a credential known to be gone ends the session.
    try { if (creds.isCurrent(id)) return id; } catch (e) { logger?.error({ err: e }, 'checking an MQTT credential failed'); return undefined; }
    end(client!, id);
    return undefined;
  };
  const end = (client: Client, id: MqttIdentity) => {
    if (!who.delete(client)) return;
    stats.endedSessions++;
    logger?.warn({ code: 'HUB_ERR_MQTT_AUTH', user: id.username }, 'ended an MQTT session: its credential was revoked or replaced');
    client.close();
  };
  aedes.authorizePublish = (client, packet, cb) => {
    const id = current(client);
    const problem = !id ? 'no current credential' : !mayPublish(id, packet.topic) ? 'topic not allowed' : publishProblem(id, packet.topic, packet.payload.length, packet.retain);
    if (!problem) { cb(null); return; }
    stats.refusedPublishes++;
    logger?.warn({ code: 'HUB_ERR_MQTT_FORBIDDEN', user: id?.username, topic: packet.topic.slice(0, 200), problem }, 'refused an MQTT publish');
    cb(new Error(`not allowed to publish on ${packet.topic}: ${problem}`));
  };
  aedes.authorizeSubscribe = (client, sub, cb) => {
    const id = current(client);
    const p = sub.topic.split('/');
    const bundleOk = id?.role !== 'device' || !mayReadBundle || p[2] !== 'bundle' || mayReadBundle(id.username, p[3]);
    if (id && maySubscribe(id, sub.topic) && bundleOk) { cb(null, sub); return; }
    stats.refusedSubscribes++;
    logger?.warn({ code: 'HUB_ERR_MQTT_FORBIDDEN', user: id?.username, filter: sub.topic.slice(0, 200) }, 'refused an MQTT subscription');
    cb(null, null);
  };
  // Revocation ends idle sessions too (a revoked device must stop receiving), not only the next publish.
  // One read of the current credentials, then a comparison per connected client.
  const sweep = () => {
    let valid: Map<string, Buffer>;
    try { valid = creds.currentSalts(); } catch (e) { logger?.error({ err: e }, 'checking MQTT credentials failed'); return; }
    // aedes keeps its connected clients by id (not in its typings).
    for (const client of Object.values((aedes as unknown as { clients: Record<string, Client> }).clients)) {
      const id = who.get(client);
      if (id && !(id.salt && valid.get(id.username)?.equals(id.salt))) end(client, id);
    }
  };
  let scheduled = false;
  const soon = () => { if (!scheduled) { scheduled = true; setImmediate(() => { scheduled = false; sweep(); }); } };
  const unsubscribe = creds.onChange(soon);
  let version = creds.dataVersion();
  const timer = setInterval(() => {
    try {
      const v = creds.dataVersion();
      if (v !== version) { version = v; sweep(); }
    } catch (e) { logger?.error({ err: e }, 'checking for MQTT credential changes failed'); }
  }, REVALIDATE_MS);
  timer.unref();
  aedes.once('closed', () => { clearInterval(timer); unsubscribe(); });
  return { stats, packetLimit: (client) => maxPacketBytes(who.get(client)) };
}
