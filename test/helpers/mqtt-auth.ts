/** MQTT clients for the access-control suites: connect with or without a credential, observe refusals. */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { mosquittoAcl } from '../../hub/broker-acl.js';
import { mosquittoConf } from '../../hub/mosquitto-conf.js';
import { tempDir } from './env.js';
import { findProgram } from './programs.js';
import type { Mosquitto } from './hub-mosquitto.js';

/** Connect; resolves with the client, or rejects with the CONNACK refusal. */
export function connectClient(url: string, o: IClientOptions): Promise<MqttClient> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5_000, protocolVersion: 4, ...o });
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', (e) => { c.end(true); reject(e); });
    c.once('close', () => { if (!c.connected) reject(new Error('closed before CONNACK')); });
  });
}

/** Publish and report whether the broker let it through (PUBACK) or cut the client off. */
export async function tryPublish(c: MqttClient, topic: string, payload: string | Buffer): Promise<'acked' | 'disconnected'> {
  const closed = new Promise<'disconnected'>((r) => c.once('close', () => r('disconnected')));
  const acked = c.publishAsync(topic, payload, { qos: 1 }).then(() => 'acked' as const, () => 'disconnected' as const);
  return Promise.race([acked, closed]);
}

/** Comes with Debian's mosquitto package; only the suites that start mosquitto (and so skip without it) call it. */
export const PASSWD = findProgram('mosquitto_passwd') ?? 'mosquitto_passwd';

/** mosquitto with a password file, the ACL file of hub/broker-acl.ts and the conf lines of hub/mosquitto-conf.ts (the README's "External broker" setup). */
export async function startSecureMosquitto(users: Record<string, string>): Promise<Mosquitto & { dir: string }> {
  const dir = tempDir('fleetcast-mosq-auth-');
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, '');
  for (const [u, p] of Object.entries(users)) execFileSync(PASSWD, ['-b', passwd, u, p]);
  writeFileSync(join(dir, 'acl'), mosquittoAcl());
  // Imported here, not at the top: suites that only use connectClient/tryPublish must not need mosquitto.
  const { startMosquitto } = await import('./hub-mosquitto.js');
  return startMosquitto(undefined, { dir, lines: mosquittoConf({ passwordFile: passwd, aclFile: join(dir, 'acl') }).trimEnd().split('\n') });
}
