#!/usr/bin/env node
/**
 * `fleetcast` — the operator CLI. Thin: it picks a command module, which parses
 * its arguments and calls into the rooms.
 */
import { readFileSync } from 'node:fs';
import { ROLLOUT_ACTION_NAMES } from '@fleetcast/hub/rollouts/actions.js';
import { commandNamed, COMMANDS, wantsHelp } from './command-table.js';
import { quietOnClosedPipe, runMain } from '@fleetcast/protocol/cli-main.js';

const HELP = `fleetcast — signed, staged ML model distribution to device fleets

usage: fleetcast <command> [options]

  keys init --out DIR                      make root.json and the root, release and hub keys
  keys rotate|add|revoke --keys DIR --sign KEY ...   root N+1, signed by old and new root keys
  device enroll ID --hub URL [--json] | --file IDS [--rotate]   issue devices' MQTT credentials (shown once)
  device debug ID --hub URL --rows N --minutes M | --off    raw debug sampling for one device (≤100 rows, ≤60 min)
  audit export --hub URL --out DIR         copy the transparency log out of a hub
  audit verify DIR --root root.json        check an export offline; non-zero exit on any problem
  bundle build MODEL.onnx --name N --version V --key release.key --out FILE [--schema schema.json]
  bundle inspect FILE [--json]             print a bundle's manifest
  bundle verify FILE --root root.json      check every signature and hash
  model example --out model.onnx           write an example ONNX model to start from
  hub --data DIR --keys DIR [--mqtt-port 1883] [--http-port 8080] [--broker mqtt://HOST:PORT]
  publish FILE --hub URL                   upload a bundle to the hub
  deploy NAME@VERSION --hub URL (--all | --devices ID,... [--allow-unknown])
  devices list --hub URL [--state online|offline] [--version NAME@V] [--tag T] [--json] | devices get ID
  rollout start NAME@VERSION [--rings FILE|canary:1,early:10,broad:100] [--auto-promote] [--window CRON] [--rate N/min] [--supersede]
  rollout status [ID] [--json] | watch [ID] | history ID
  rollout ${ROLLOUT_ACTION_NAMES.join('|')} ID [--reason TEXT]   (rollout --help: from which states)
  token create --role admin|operator|auditor | token list | token revoke ID
                                           API calls need FLEETCAST_TOKEN_FILE or FLEETCAST_TOKEN (first admin token: <hub data>/admin.token)
  sim --broker URL --agents N --root root.json
  drift report NAME@VERSION --hub URL [--ring R] [--since 15m] [--json]   drift per feature, worst first
  demo                                     run the whole flow on embedded defaults

  fleetcast COMMAND --help prints a command's usage; fleetcast --version the version.
`;

/** The version in the CLI package's package.json, found from this file (cli/ in the sources, cli/dist/ when compiled). */
function version(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const p = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (p.name === '@fleetcast/cli' && p.version) return p.version;
    } catch { /* try the next level up */ }
  }
  return 'unknown';
}

quietOnClosedPipe();
runMain(async (argv) => {
  const [cmd, ...rest] = argv;
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') { process.stdout.write(`fleetcast ${version()}\n`); return 0; }
  if (!cmd) { process.stderr.write(HELP); return 2; }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const topic = cmd === 'help' && rest[0] ? commandNamed(rest[0]) : undefined;
    process.stdout.write(topic ? `usage:\n${(await topic.load()).USAGE}\n` : HELP);
    return 0;
  }
  const entry = commandNamed(cmd);
  if (!entry) { process.stderr.write(`fleetcast: unknown command ${JSON.stringify(cmd)} (commands: ${COMMANDS.map((c) => c.name).join(', ')})\n\n${HELP}`); return 2; }
  const mod = await entry.load();
  // Usage on stdout with exit 0, as operators' tools do; nothing runs (a hub must not start on `hub --help`).
  if (wantsHelp(rest)) { process.stdout.write(`usage:\n${mod.USAGE}\n`); return 0; }
  return mod.run(rest);
});
