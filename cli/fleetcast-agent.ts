#!/usr/bin/env node
/**
 * `fleetcast-agent`: the device daemon, until SIGINT/SIGTERM. Thin: it parses
 * arguments (plus an optional JSON config file for the less common options)
 * and calls createAgent. The listen address goes to stdout (one line, easy to
 * scrape); the log goes to stderr as JSON lines, without a logging framework,
 * to keep the device footprint small.
 */
import { readFileSync } from 'node:fs';
import { createAgent, type AgentLog } from '../agent/agent.js';
import { FleetcastError, isFleetcastError } from '../protocol/errors.js';
import { need, parseCli } from './args.js';
import { runMain } from './main.js';

const USAGE = 'fleetcast-agent --broker URL --device-id ID --data DIR --root root.json [--listen 127.0.0.1:9090] [--config options.json] [--quiet]';

function jsonLog(quiet: boolean): AgentLog {
  const line = (level: string) => (obj: object, msg?: string) => {
    if (quiet && level === 'info') return;
    const o = Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, v instanceof Error ? { message: v.message, code: (v as { code?: string }).code, stack: v.stack } : v]));
    process.stderr.write(`${JSON.stringify({ time: Date.now(), level, component: 'fleetcast-agent', ...o, ...(msg ? { msg } : {}) })}\n`);
  };
  return { info: line('info'), warn: line('warn'), error: line('error') };
}

function readConfig(path: string): Record<string, unknown> {
  let v: unknown;
  try { v = JSON.parse(readFileSync(path, 'utf8')); } catch (e) {
    throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `--config ${path}: ${(e as Error).message}`, 2);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `--config ${path} must hold a JSON object of agent options`, 2);
  return v as Record<string, unknown>;
}

runMain(async (argv) => {
  const { values, positionals } = parseCli(argv, {
    broker: { type: 'string' }, 'device-id': { type: 'string' }, data: { type: 'string' }, root: { type: 'string' },
    listen: { type: 'string' }, config: { type: 'string' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  }, USAGE);
  if (values.help) { process.stdout.write(`usage: ${USAGE}\n`); return 0; }
  if (positionals.length > 0) { process.stderr.write(`fleetcast-agent: unexpected ${JSON.stringify(positionals[0])}\nusage: ${USAGE}\n`); return 2; }
  // Flags win over the config file; the options schema refuses unknown keys either way.
  const input: Record<string, unknown> = {
    ...(values.config !== undefined ? readConfig(values.config) : {}),
    brokerUrl: need(values.broker, '--broker', USAGE),
    deviceId: need(values['device-id'], '--device-id', USAGE),
    dataDir: need(values.data, '--data', USAGE),
    rootPath: need(values.root, '--root', USAGE),
  };
  if (values.listen !== undefined) input.listen = values.listen;
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
  process.stdout.write(`fleetcast-agent: ${agent.options.deviceId} started${a ? `, predict API http://${a.host}:${a.port}` : ''}\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  process.stdout.write(`fleetcast-agent: ${signal}, stopping\n`);
  await agent.stop();
  return 0;
});
