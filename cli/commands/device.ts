/**
 * `fleetcast device enroll ID --data DIR`: issue a device's MQTT credential in
 * the hub's data folder (issue #6). The secret is printed once and only its
 * hash is kept; enrolling again replaces it. `device revoke ID` withdraws it.
 * Either ends a session the device has open on the running hub's embedded
 * broker (the broker sees the change through SQLite's data_version).
 * Works while the hub runs (SQLite WAL allows a second writer to wait its turn).
 */
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { HubStore } from '../../hub/store.js';
import { need, parseCli } from '../args.js';

const USAGE = 'fleetcast device enroll ID --data HUB_DATA_DIR [--json]\nfleetcast device revoke ID --data HUB_DATA_DIR';

export async function run(argv: string[]): Promise<number> {
  // Issue #5: `device debug ID …` talks to the hub's API (cli/commands/device-debug.ts).
  if (argv[0] === 'debug') return (await import('./device-debug.js')).run(argv.slice(1));
  const { values, positionals } = parseCli(argv, { data: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const [cmd, id] = positionals;
  if ((cmd !== 'enroll' && cmd !== 'revoke') || !id) { process.stderr.write(`usage: ${USAGE}\n`); return 2; }
  const store = HubStore.open(need(values.data, '--data', USAGE));
  try {
    const creds = new MqttCredentials(store.sqlite);
    if (cmd === 'revoke') {
      const done = creds.revoke(id);
      process.stdout.write(done ? `revoked the MQTT credential of ${id}\n` : `${id} has no active MQTT credential\n`);
      return done ? 0 : 1;
    }
    const c = creds.enrollDevice(id);
    if (values.json) process.stdout.write(JSON.stringify(c) + '\n');
    // Secrets belong in the agent's --config file (mode 0600), not on a command line other users can read.
    else process.stdout.write(`device ${id} enrolled. Shown once; put this in the device's fleetcast-agent --config file:\n  ${JSON.stringify({ mqttUsername: c.username, mqttPassword: c.password })}\n`);
    return 0;
  } finally {
    store.close();
  }
}
