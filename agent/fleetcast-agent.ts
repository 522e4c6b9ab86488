#!/usr/bin/env node
/**
 * `fleetcast-agent`: the device daemon, until SIGINT/SIGTERM. Thin: it parses
 * arguments, merges them over FLEETCAST_AGENT_* environment variables and an
 * optional JSON config file (agent/config.ts), and calls createAgent, which
 * validates the result once.
 *
 * One log stream, on stdout: pino with the line shape the hub also writes
 * (protocol/log-format.ts), JSON by default and one readable line per record on
 * a terminal or with --log-format pretty. pino is what the agent package
 * depends on anyway (DESIGN "Packages"): a hand-written logger would be a second
 * line format to keep equal to the hub's. Status lines ("started … predict API
 * http://…", "installed NAME vN", "SIGTERM, stopping") are log records with
 * machine-readable keys (event, predictApi).
 *
 * Exit status 2 means "configuration error: restarting cannot fix it" (the
 * systemd unit's RestartPreventExitStatus=2); any other failure exits 1 and
 * systemd restarts the agent.
 */
import { pino } from 'pino';
import { createAgent } from './agent.js';
import { envName, isConfigError, mergeAgentConfig } from './config.js';
import { parseAgentOptions } from './options.js';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { logOptions, prettyLine, type LogFormat, type LogLevel } from '@fleetcast/protocol/log-format.js';
import { parseCli } from '@fleetcast/protocol/cli-args.js';
import { runMain } from '@fleetcast/protocol/cli-main.js';

const USAGE = 'fleetcast-agent --broker URL --device-id ID --data DIR --root root.json [--listen 127.0.0.1:9090] [--runtime node|wasm] [--config options.json]\n'
  + '  [--log-level fatal|error|warn|info|debug|trace|silent] [--log-format json|pretty] [--quiet (warnings, errors and start/install/stop records only)]\n'
  + '  (every option may also come from the JSON config file or a FLEETCAST_AGENT_* variable; flags win, then variables, then the file;\n'
  + '   all options, their defaults, ranges and variables: docs/agent-config.md)';

/** Configuration errors exit 2 (systemd does not restart); the message carries the usage. */
function asConfigError(e: unknown): unknown {
  if (!isConfigError(e)) return e;
  return new FleetcastError(e.code, `${e.message}\nusage: ${USAGE}`, 2, e.details);
}

function makeLogger(level: LogLevel, format: LogFormat) {
  // process.stdout is synchronous for files and pipes on Linux, so a record written just before exit is not lost.
  const out = format === 'pretty' ? { write: (line: string) => { process.stdout.write(prettyLine(line)); } } : process.stdout;
  return pino(logOptions('fleetcast-agent', level), out);
}

runMain(async (argv) => {
  const { values, positionals } = parseCli(argv, {
    broker: { type: 'string' }, 'device-id': { type: 'string' }, data: { type: 'string' }, root: { type: 'string' },
    listen: { type: 'string' }, runtime: { type: 'string' }, config: { type: 'string' }, quiet: { type: 'boolean' },
    'log-level': { type: 'string' }, 'log-format': { type: 'string' }, help: { type: 'boolean', short: 'h' },
  }, USAGE);
  if (values.help) { process.stdout.write(`usage: ${USAGE}\n`); return 0; }
  if (positionals.length > 0) throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `unexpected argument ${JSON.stringify(positionals[0])}\nusage: ${USAGE}`, 2);
  // Flags win over FLEETCAST_AGENT_* variables, which win over the config file; the options
  // schema refuses unknown keys and bad types from any of them, naming the key.
  let input: Record<string, unknown>;
  try {
    input = mergeAgentConfig({
      ...(values.config !== undefined ? { file: values.config } : {}),
      env: process.env,
      flags: {
        brokerUrl: values.broker, deviceId: values['device-id'], dataDir: values.data, rootPath: values.root, listen: values.listen, runtime: values.runtime,
        logLevel: values['log-level'] ?? (values.quiet ? 'warn' : undefined), logFormat: values['log-format'],
      },
    });
  } catch (e) {
    throw asConfigError(e);
  }
  for (const [key, flag] of [['deviceId', '--device-id'], ['dataDir', '--data'], ['rootPath', '--root']] as const) {
    if (input[key] === undefined || input[key] === '') throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `${flag} is required (or ${key} in --config, or ${envName(key)})\nusage: ${USAGE}`, 2);
  }
  let o;
  try {
    o = parseAgentOptions(input);
  } catch (e) {
    throw asConfigError(e);
  }
  const log = makeLogger(o.logLevel, o.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json'));
  // --quiet (warnings and errors only) keeps the lifecycle records (started, installed, stopping):
  // supervisors and scripts wait for "started"; an explicit --log-level is taken as given.
  const life = values.quiet && values['log-level'] === undefined ? log.child({}, { level: 'info' }) : log;
  const agent = createAgent(o, { log });
  agent.on('installed', (m) => life.info({ event: 'installed', bundleId: m.bundleId, name: m.name, version: m.version, counter: m.counter }, `installed ${m.name} v${m.version} (${m.bundleId.slice(0, 12)}…)`));
  try {
    await agent.start();
  } catch (e) {
    // The coded line goes to stderr (protocol/cli-main.ts), like every other CLI failure.
    throw asConfigError(e);
  }
  const a = agent.address;
  const predictApi = a ? `http://${a.host}:${a.port}` : null;
  // The handlers go in before the started record: a supervisor (or a test) that signals as soon as it reads
  // that line must reach them, not Node's default action, which ends the process without stopping the agent.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  life.info({ event: 'started', deviceId: o.deviceId, predictApi, runtime: agent.status().runtime }, `${o.deviceId} started${predictApi ? `, predict API ${predictApi}` : ''}, runtime ${agent.status().runtime}`);
  // Offline and without --listen nothing else holds the event loop open: keep the daemon alive until a signal.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const signal = await stopSignal;
  clearInterval(keepAlive);
  life.info({ event: 'stopping', signal }, `${signal}, stopping`);
  await agent.stop();
  return 0;
});
