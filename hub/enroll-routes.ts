/**
 * Device enrollment over the API (admin), so an operator enrolls from any
 * machine with a token instead of writing the hub's database on the hub's host:
 *   POST   /v1/enrollments           {devices: [ID, …], rotate?}  issue MQTT credentials, shown once
 *   DELETE /v1/devices/:id/credentials                          withdraw one (ends its broker session)
 * A device that already holds an active credential is refused unless `rotate`
 * (HUB_ERR_DEVICE_ENROLLED, naming them): re-enrolling by accident would cut a
 * working device off until someone copies the new secret onto it. A batch is
 * all or nothing. Each credential is the fleetcast-agent `--config` content
 * ({deviceId, mqttUsername, mqttPassword}); only its salted hash is kept.
 */
import type { FastifyInstance } from 'fastify';
import { arr, bool, obj, optional, str, type Infer } from '@fleetcast/protocol/schema.js';
import { DEVICE_ID_PATTERN } from '@fleetcast/protocol/topics.js';
import { deviceIdParams, errorBody } from './api-schemas.js';
import { actorOf } from './auth/guard.js';
import { hubError } from './errors.js';
import { MqttCredentials } from './mqtt-credentials.js';
import type { HubStore } from './store.js';

/** At most this many devices per request: one transaction, one answer the operator must store. */
export const MAX_ENROLL_BATCH = 10_000;

const deviceId = str({ pattern: DEVICE_ID_PATTERN });
export const enrollBody = obj({
  devices: arr(deviceId, { min: 1, max: MAX_ENROLL_BATCH }),
  /** Replace the credential of devices already enrolled (the old one stops working at once). */
  rotate: optional(bool()),
}, { description: 'Issue MQTT credentials for these device ids; each is shown once' });
export type EnrollBody = Infer<typeof enrollBody>;

/** Exactly what `fleetcast-agent --config` takes for the device's broker login. */
export const agentCredential = obj({ deviceId, mqttUsername: str(), mqttPassword: str() });
export type AgentCredential = Infer<typeof agentCredential>;
const enrollResult = obj({ credentials: arr(agentCredential), rotated: arr(deviceId) });
const revokeResult = obj({ deviceId, revoked: bool() });

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function registerEnrollRoutes(app: FastifyInstance<any, any, any, any>, deps: { store: Pick<HubStore, 'db'> }): void {
  const creds = new MqttCredentials(deps.store.db);
  const errors = { '4xx': errorBody.json, '5xx': errorBody.json };

  app.post('/v1/enrollments', { config: { access: 'admin' },
    schema: { summary: 'Enroll devices: issue each an MQTT credential, shown once (admin); already enrolled ones need rotate: true', body: enrollBody.json, response: { 201: enrollResult.json, ...errors } },
  }, async (req, reply) => {
    const body = req.body as EnrollBody;
    const ids = [...new Set(body.devices)];
    const enrolled = ids.filter((id) => creds.isEnrolled(id));
    if (enrolled.length > 0 && !body.rotate) {
      throw hubError('HUB_ERR_DEVICE_ENROLLED', `${enrolled.length} already enrolled: ${enrolled.slice(0, 20).join(', ')}${enrolled.length > 20 ? ', …' : ''}`, { enrolled });
    }
    // All or nothing: a bad id (the hub's own user name) half-way must not leave half a batch issued and unseen.
    const credentials = deps.store.db.transaction(() => ids.map((id) => {
      const c = creds.enrollDevice(id);
      return { deviceId: id, mqttUsername: c.username, mqttPassword: c.password };
    }))();
    req.log.info({ actor: actorOf(req), devices: ids.length, rotated: enrolled.length }, 'devices enrolled');
    reply.code(201);
    return { credentials, rotated: enrolled };
  });

  app.delete('/v1/devices/:id/credentials', { config: { access: 'admin' },
    schema: { summary: 'Withdraw a device\'s MQTT credential; its broker session ends (admin)', params: deviceIdParams.json, response: { 200: revokeResult.json, ...errors } },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const revoked = creds.revoke(id);
    req.log.info({ actor: actorOf(req), deviceId: id, revoked }, 'device credential revoked');
    return { deviceId: id, revoked };
  });
}
