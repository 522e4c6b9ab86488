#!/usr/bin/env node
/**
 * `fleetcast-agent`: the device daemon, until SIGINT/SIGTERM. Thin: it parses
 * arguments, merges them over FLEETCAST_AGENT_* environment variables and an
 * optional JSON config file (agent/config.ts), and calls createAgent, which
 * validates the result once. The listen address goes to stdout (one line, easy to
 * scrape); the log goes to stderr as JSON lines, without a logging framework,
 * to keep the device footprint small.
 */
import { createAgent, type AgentLog } from '../agent/agent.js';
import { envName, mergeAgentConfig } from '../agent/config.js';
import { FleetcastError, isFleetcastError } from '../protocol/errors.js';
import { parseCli } from './args.js';
import { runMain } from './main.js';

const USAGE = 'fleetcast-agent --broker URL --device-id ID --data DIR --root root.json [--listen 127.0.0.1:9090] [--runtime node|wasm] [--config options.json] [--quiet]\n  (every option may also come from the JSON config file or a FLEETCAST_AGENT_* variable; flags win, then variables, then the file)';

function jsonLog(quiet: boolean): AgentLog {
  const line = (level: string) => (obj: object, msg?: string) => {
    if (quiet && level === 'info') return;
    const o = Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, v instanceof Error ? { message: v.message, code: (v as { code?: string }).code, stack: v.stack } : v]));
    process.stderr.write(`${JSON.stringify({ time: Date.now(), level, component: 'fleetcast-agent', ...o, ...(msg ? { msg } : {}) })}\n`);
  };
  return { info: line('info'), warn: line('warn'), error: line('error') };
}


runMain(async (argv) => {
  const { values, positionals } = parseCli(argv, {
    broker: { type: 'string' }, 'device-id': { type: 'string' }, data: { type: 'string' }, root: { type: 'string' },
    listen: { type: 'string' }, runtime: { type: 'string' }, config: { type: 'string' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  }, USAGE);
  if (values.help) { process.stdout.write(`usage: ${USAGE}\n`); return 0; }
  if (positionals.length > 0) { process.stderr.write(`fleetcast-agent: unexpected ${JSON.stringify(positionals[0])}\nusage: ${USAGE}\n`); return 2; }
  // Flags win over FLEETCAST_AGENT_* variables, which win over the config file; the options
  // schema refuses unknown keys and bad types from any of them, naming the key.
  let input: Record<string, unknown>;
  try {
    input = mergeAgentConfig({
      ...(values.config !== undefined ? { file: values.config } : {}),
      env: process.env,
      flags: { brokerUrl: values.broker, deviceId: values['device-id'], dataDir: values.data, rootPath: values.root, listen: values.listen, runtime: values.runtime },
    });
  } catch (e) {
    if (isFleetcastError(e)) throw new FleetcastError(e.code, `${e.message}\nusage: ${USAGE}`, 2);
    throw e;
  }
  for (const [key, flag] of [['deviceId', '--device-id'], ['dataDir', '--data'], ['rootPath', '--root']] as const) {
    if (input[key] === undefined || input[key] === '') throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `${flag} is required (or ${key} in --config, or ${envName(key)})\nusage: ${USAGE}`, 2);
  }
  const log = jsonLog(values.quiet === true);
  let agent;
  try {
    agent = createAgent(input, { log });
  } catch (e) {
    // A bad option is a usage error (exit 2), like a bad flag.
    if (isFleetcastError(e) && e.code.startsWith('PROTO_ERR_')) throw new FleetcastError(e.code, `${e.message}\nusage: ${USAGE}`, 2);
    throw e;
  }
  agent.on('installed', (m) => process.stdout.write(`fleetcast-agent: installed ${m.name} v${m.version} (${m.bundleId.slice(0, 12)}…)\n`));
  await agent.start();
  const a = agent.address;
  process.stdout.write(`fleetcast-agent: ${agent.options.deviceId} started${a ? `, predict API http://${a.host}:${a.port}` : ''}, runtime ${agent.status().runtime}\n`);
  // Offline and without --listen nothing else holds the event loop open: keep the daemon alive until a signal.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(keepAlive);
  process.stdout.write(`fleetcast-agent: ${signal}, stopping\n`);
  await agent.stop();
  return 0;
});
