/**
 * `fleetcast device enroll|revoke|debug` through the hub's API (an admin token
 * for enroll and revoke). A credential is printed (or written) once, as exactly
 * the fleetcast-agent `--config` content; the hub keeps only its hash.
 * Revoking or rotating ends the device's session on the embedded broker.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentCredential } from '@fleetcast/hub/enroll-routes.js';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { DEVICE_ID_PATTERN } from '@fleetcast/protocol/topics.js';
import { parseCli } from '@fleetcast/protocol/cli-args.js';
import { hubUrlFrom, tokenFrom } from '../hub-client.js';
import { USAGE as DEBUG_USAGE } from './device-debug.js';

export const USAGE = `fleetcast device enroll ID --hub URL [--rotate] [--broker mqtt://HOST:PORT] [--json]
fleetcast device enroll --file IDS.txt --out-dir DIR --hub URL [--rotate] [--broker mqtt://HOST:PORT]
fleetcast device revoke ID --hub URL
${DEBUG_USAGE}
  enroll prints the device's fleetcast-agent --config content once ({"deviceId","mqttUsername","mqttPassword"}, plus
  "brokerUrl" with --broker); with --file (one id per line, # comments) it writes DIR/ID.json (mode 0600) per device.
  An enrolled device is refused unless --rotate (its old secret stops working at once). Admin token:
  FLEETCAST_TOKEN_FILE or FLEETCAST_TOKEN.`;

const bad = (p: string) => new FleetcastError('PROTO_ERR_INVALID_OPTION', `${p}\nusage: ${USAGE}`, 2);

/** Device ids from a file: one per line; blank lines and # comments skipped; every id checked before anything is sent. */
export function readIdFile(file: string): string[] {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) { throw bad(`--file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  const ids: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    if (!DEVICE_ID_PATTERN.test(line)) throw bad(`--file ${file} line ${i + 1}: ${JSON.stringify(line)} is not a device id (${DEVICE_ID_PATTERN.source})`);
    ids.push(line);
  });
  if (ids.length === 0) throw bad(`--file ${file} names no device`);
  return ids;
}

export async function run(argv: string[]): Promise<number> {
  if (argv[0] === 'debug') return (await import('./device-debug.js')).run(argv.slice(1));
  const { values, positionals } = parseCli(argv, {
    hub: { type: 'string' }, token: { type: 'string' }, data: { type: 'string' }, json: { type: 'boolean' }, rotate: { type: 'boolean' },
    file: { type: 'string' }, 'out-dir': { type: 'string' }, broker: { type: 'string' },
  }, USAGE);
  const [cmd, id, ...extra] = positionals;
  if (values.data !== undefined) throw bad('--data is gone: enrollment goes through the hub\'s API (--hub URL with an admin token), so the hub records who enrolled whom');
  if (cmd !== 'enroll' && cmd !== 'revoke') throw bad('give enroll, revoke or debug');
  if (extra.length) throw bad(`unexpected ${JSON.stringify(extra[0])}`);
  if (values.broker !== undefined && !/^mqtts?:\/\/\S+$/.test(values.broker)) throw bad(`--broker must be an mqtt:// or mqtts:// URL, got ${JSON.stringify(values.broker)}`);
  const client = hubUrlFrom(values.hub, USAGE, tokenFrom(values.token));
  if (cmd === 'revoke') {
    if (!id) throw bad('revoke needs a device ID');
    const r = await client.send<{ revoked: boolean }>('DELETE', `/v1/devices/${encodeURIComponent(id)}/credentials`);
    process.stdout.write(r.revoked ? `revoked the MQTT credential of ${id}\n` : `${id} has no active MQTT credential\n`);
    return r.revoked ? 0 : 1;
  }
  if ((id === undefined) === (values.file === undefined)) throw bad('give one device ID or --file IDS.txt');
  if (values.file !== undefined && values['out-dir'] === undefined) throw bad('--file needs --out-dir DIR (one agent config file per device; secrets are not printed in bulk)');
  if (id !== undefined && !DEVICE_ID_PATTERN.test(id)) throw bad(`${JSON.stringify(id)} is not a device id (${DEVICE_ID_PATTERN.source})`);
  const ids = id !== undefined ? [id] : readIdFile(values.file!);
  const r = await client.send<{ credentials: AgentCredential[]; rotated: string[] }>('POST', '/v1/enrollments', { devices: ids, ...(values.rotate ? { rotate: true } : {}) });
  const config = (c: AgentCredential) => ({ ...c, ...(values.broker !== undefined ? { brokerUrl: values.broker } : {}) });
  if (values['out-dir'] !== undefined) {
    const dir = values['out-dir'];
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const c of r.credentials) {
      const path = join(dir, `${c.deviceId}.json`);
      writeFileSync(path, JSON.stringify(config(c)) + '\n', { mode: 0o600 });
      chmodSync(path, 0o600); // an existing file keeps its old mode through writeFileSync
    }
    process.stdout.write(`enrolled ${r.credentials.length} device(s)${r.rotated.length ? ` (${r.rotated.length} rotated)` : ''}; wrote ${dir}/ID.json for each (mode 0600): give each device its file as fleetcast-agent --config\n`);
    return 0;
  }
  const c = config(r.credentials[0]);
  // The whole line is the agent's --config file: `fleetcast device enroll dev-1 --json > dev-1.json`.
  if (values.json) process.stdout.write(JSON.stringify(c) + '\n');
  else process.stdout.write(`device ${c.deviceId} ${r.rotated.length ? 're-enrolled (the old secret no longer works)' : 'enrolled'}. Shown once; save it as the device's fleetcast-agent --config file (mode 0600):\n  ${JSON.stringify(c)}\n`);
  return 0;
}
