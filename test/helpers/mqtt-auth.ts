/** MQTT clients for the access-control suites: connect with or without a credential, observe refusals. */
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { mosquittoAcl } from '../../hub/broker-acl.js';
import { freePort, tempDir, waitFor } from './env.js';
import { MOSQUITTO, type Mosquitto } from './hub-mosquitto.js';

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

export const PASSWD = '/usr/bin/mosquitto_passwd';

/** mosquitto with a password file and the ACL file of hub/broker-acl.ts (the README's "External broker" setup). */
export async function startSecureMosquitto(users: Record<string, string>): Promise<Mosquitto & { dir: string }> {
  const dir = tempDir('fleetcast-mosq-auth-');
  const port = await freePort();
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, '');
  for (const [u, p] of Object.entries(users)) execFileSync(PASSWD, ['-b', passwd, u, p]);
  writeFileSync(join(dir, 'acl'), mosquittoAcl());
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous false', `password_file ${passwd}`, `acl_file ${join(dir, 'acl')}`, 'persistence false', 'log_dest stderr', 'log_type error', ...(process.getuid?.() === 0 ? ['user root'] : [])].join('\n') + '\n');
  const proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  let exited = false;
  proc.once('exit', () => { exited = true; });
  await waitFor(async () => {
    if (exited) throw new Error(`mosquitto exited: ${stderr}`);
    return new Promise<boolean>((r) => { const s = netConnect(port, '127.0.0.1'); s.once('connect', () => { s.destroy(); r(true); }); s.once('error', () => r(false)); });
  }, 'mosquitto listening', 15_000);
  return {
    url: `mqtt://127.0.0.1:${port}`, port, proc, dir,
    async stop() { if (exited) return; const gone = new Promise((r) => proc.once('exit', r)); proc.kill('SIGKILL'); await gone; },
  };
}
