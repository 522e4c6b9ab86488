/**
 * `fleetcast hub`: run a hub until SIGINT/SIGTERM. The URLs go to stdout (one
 * line each, easy to scrape); the hub's JSON log goes to stderr.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { LOG_LEVELS, logOptions, type LogLevel } from '@fleetcast/protocol/log-format.js';
import { BOOTSTRAP_FILE } from '@fleetcast/hub/auth/tokens.js';
import { startHub } from '@fleetcast/hub/hub.js';
import type { HubOptionsInput } from '@fleetcast/hub/options.js';
import { need, parseCli, refuseSecretFlag, secretFrom } from '@fleetcast/protocol/cli-args.js';

export const USAGE = 'fleetcast hub --data DIR --keys DIR [--mqtt-port 1883] [--http-port 8080] [--host 127.0.0.1] [--http-host ADDR] [--mqtt-host ADDR] [--http-tls-cert PEM --http-tls-key PEM] [--broker mqtt://HOST:PORT] [--store postgres://USER@HOST:PORT/DB (password: PGPASSWORD or ~/.pgpass)] [--log-level info]\n  [--insecure-demo] [--mqtt-tls-cert PEM --mqtt-tls-key PEM] [--mqtt-username U --mqtt-password-file FILE (or FLEETCAST_MQTT_PASSWORD)] [--mqtt-ca PEM]\n  [--max-debug-devices 10] [--broker-drain-timeout-ms 60000] [--chunk-expect-wait-ms 3000] [--chunk-expect-max-wait-ms 30000] [--ingest-workers 0] [--telemetry JSON|FILE.json]\n  [--metrics-port PORT [--metrics-host ADDR]] (GET /metrics without a token on its own listener; on the API it needs an auditor token)\n  [--cluster --mqtt-client-id ID [--advertise-url URL]] (one of several hubs sharing --store postgres://… and --broker: a leader elected in PostgreSQL, device messages through MQTT 5 shared subscriptions)';

function port(v: string | undefined): number | undefined {
  // Left as given when not a number, so the options schema names the bad value.
  return v === undefined ? undefined : (/^[0-9]+$/.test(v) ? Number(v) : (v as unknown as number));
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, {
    data: { type: 'string' }, keys: { type: 'string' }, 'mqtt-port': { type: 'string' }, 'http-port': { type: 'string' },
    host: { type: 'string' }, 'http-host': { type: 'string' }, 'mqtt-host': { type: 'string' }, 'http-tls-cert': { type: 'string' }, 'http-tls-key': { type: 'string' }, broker: { type: 'string' }, store: { type: 'string' }, 'log-level': { type: 'string' },
    'insecure-demo': { type: 'boolean' }, 'mqtt-tls-cert': { type: 'string' }, 'mqtt-tls-key': { type: 'string' }, 'mqtt-username': { type: 'string' }, 'mqtt-password': { type: 'string' }, 'mqtt-password-file': { type: 'string' }, 'mqtt-ca': { type: 'string' },
    'max-debug-devices': { type: 'string' }, 'broker-drain-timeout-ms': { type: 'string' }, 'chunk-expect-wait-ms': { type: 'string' }, 'chunk-expect-max-wait-ms': { type: 'string' }, 'ingest-workers': { type: 'string' }, telemetry: { type: 'string' },
    'metrics-host': { type: 'string' }, 'metrics-port': { type: 'string' },
    cluster: { type: 'boolean' }, 'advertise-url': { type: 'string' }, 'mqtt-client-id': { type: 'string' },
  }, USAGE);
  if (positionals.length > 0) { process.stderr.write(`fleetcast hub: unexpected ${JSON.stringify(positionals[0])}\nusage: ${USAGE}\n`); return 2; }
  const input: Record<string, unknown> = { dataDir: need(values.data, '--data', USAGE), keysDir: need(values.keys, '--keys', USAGE) };
  if (values.host !== undefined) input.host = values.host;
  if (values['mqtt-port'] !== undefined) input.mqttPort = port(values['mqtt-port']);
  if (values['http-port'] !== undefined) input.httpPort = port(values['http-port']);
  if (values.broker !== undefined) input.brokerUrl = values.broker;
  if (values.store !== undefined) {
    // A password in the URL would sit on argv, readable by every user of the machine (ps).
    if (/^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(values.store)) refuseSecretFlag(values.store, '--store with a password', 'PGPASSWORD or ~/.pgpass');
    input.storeUrl = values.store;
  }
  if (values['log-level'] !== undefined) input.logLevel = values['log-level'];
  // Prometheus: a token-free listener for /metrics alone (hub/metrics/routes.ts).
  if (values['metrics-port'] !== undefined) input.metricsPort = port(values['metrics-port']);
  if (values['metrics-host'] !== undefined) input.metricsHost = values['metrics-host'];
  // Issue #5: devices in operator debug raw sampling at once.
  if (values['max-debug-devices'] !== undefined) input.maxDebugDevices = port(values['max-debug-devices']);
  if (values['broker-drain-timeout-ms'] !== undefined) input.brokerDrainTimeoutMs = port(values['broker-drain-timeout-ms']);
  // How long a deploy's first chunk flush waits for the assigned devices to ask (hub/transfer.ts expect()).
  if (values['chunk-expect-wait-ms'] !== undefined) input.chunkExpectWaitMs = port(values['chunk-expect-wait-ms']);
  if (values['chunk-expect-max-wait-ms'] !== undefined) input.chunkExpectMaxWaitMs = port(values['chunk-expect-max-wait-ms']);
  // Issue #5: telemetry and drift options (hub/telemetry/options.ts: buckets, retention, thresholds, webhook,
  // ingest workers) as a JSON object or a JSON file; the options schema refuses unknown keys by name.
  if (values.telemetry !== undefined) {
    const text = values.telemetry.trimStart().startsWith('{') ? values.telemetry : (existsSync(values.telemetry) ? readFileSync(values.telemetry, 'utf8') : null);
    if (text === null) { process.stderr.write(`fleetcast hub: --telemetry ${JSON.stringify(values.telemetry)} is neither a JSON object nor a file\nusage: ${USAGE}\n`); return 2; }
    try { input.telemetry = JSON.parse(text) as unknown; } catch { process.stderr.write(`fleetcast hub: --telemetry is not valid JSON\nusage: ${USAGE}\n`); return 2; }
  }
  if (values['ingest-workers'] !== undefined) input.telemetry = { ...(input.telemetry as object | undefined), ingestWorkers: port(values['ingest-workers']) };
  // Issue #6: the embedded broker is secure unless --insecure-demo; TLS and external-broker credentials.
  if (values['insecure-demo']) input.insecureDemo = true;
  for (const [flag, key] of [['http-host', 'httpHost'], ['mqtt-host', 'mqttHost'], ['http-tls-cert', 'httpTlsCert'], ['http-tls-key', 'httpTlsKey'], ['mqtt-tls-cert', 'mqttTlsCert'], ['mqtt-tls-key', 'mqttTlsKey'], ['mqtt-username', 'mqttUsername'], ['mqtt-ca', 'mqttCa']] as const) if (values[flag] !== undefined) input[key] = values[flag];
  refuseSecretFlag(values['mqtt-password'], '--mqtt-password', '--mqtt-password-file FILE or FLEETCAST_MQTT_PASSWORD');
  const mqttPassword = secretFrom(values['mqtt-password-file'], '--mqtt-password-file', 'FLEETCAST_MQTT_PASSWORD');
  if (mqttPassword !== undefined) input.mqttPassword = mqttPassword;
  // Several hubs, one fleet (hub/cluster/): they share --store and --broker; each needs its own MQTT client id.
  if (values['mqtt-client-id'] !== undefined) input.mqttClientId = values['mqtt-client-id'];
  if (values.cluster) input.cluster = values['advertise-url'] !== undefined ? { advertiseUrl: values['advertise-url'] } : {};
  const level = (values['log-level'] ?? 'info');
  // The same line shape as the agent's log (protocol/log-format.ts); a bad level is named by the options schema.
  const logger = pino(logOptions('fleetcast-hub', (LOG_LEVELS as readonly string[]).includes(level) ? level as LogLevel : 'info'), pino.destination(2));
  const hub = await startHub(input as HubOptionsInput, { logger });
  // The handlers go in before the lines a supervisor (or a test) waits for: a signal sent as soon as it reads
  // them must reach these, not Node's default action, which ends the process without closing the hub.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  process.stdout.write(`fleetcast hub: api ${hub.httpUrl}\nfleetcast hub: mqtt ${hub.mqttUrl}${hub.broker ? ' (embedded)' : ''}${hub.broker && hub.options.insecureDemo ? ' INSECURE DEMO: anonymous clients allowed, no ACL' : ''}\n`);
  if (hub.metricsUrl) process.stdout.write(`fleetcast hub: metrics ${hub.metricsUrl} (no token)\n`);
  // Bootstrap (issue #3): the first start writes an admin API token here (mode 0600); FLEETCAST_TOKEN_FILE can point at it.
  const tokenFile = join(hub.options.dataDir, BOOTSTRAP_FILE);
  if (existsSync(tokenFile)) process.stdout.write(`fleetcast hub: admin token in ${tokenFile}\n`);
  const signal = await stopSignal;
  process.stdout.write(`fleetcast hub: ${signal}, stopping\n`);
  await hub.close();
  return 0;
}
