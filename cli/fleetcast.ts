#!/usr/bin/env node
/**
 * `fleetcast` — the operator CLI. Thin: it picks a command module, which parses
 * its arguments and calls into the rooms.
 */
import { runMain } from './main.js';

const COMMANDS: Record<string, () => Promise<{ run(argv: string[]): Promise<number> }>> = {
  keys: () => import('./commands/keys.js'),
  bundle: () => import('./commands/bundle.js'),
  hub: () => import('./commands/hub.js'),
  publish: () => import('./commands/publish.js'),
  deploy: () => import('./commands/deploy.js'),
  devices: () => import('./commands/devices.js'),
  sim: () => import('./commands/sim.js'),
  demo: () => import('./commands/demo.js'),
  audit: () => import('./commands/audit.js'),
  device: () => import('./commands/device.js'),
  drift: () => import('./commands/drift.js'),
  rollout: () => import('./commands/rollout.js'),
  token: () => import('./commands/token.js'),
};

const HELP = `fleetcast — signed, staged ML model distribution to device fleets

usage: fleetcast <command> [options]

  keys init --out DIR                      make root.json and the root, release and hub keys
  keys rotate|add|revoke --keys DIR --sign KEY ...   root N+1, signed by old and new root keys
  device enroll ID --data DIR              issue a device's MQTT credential (shown once)
  device debug ID --hub URL --rows N --minutes M | --off    raw debug sampling for one device (≤100 rows, ≤60 min)
  audit export --hub URL --out DIR         copy the transparency log out of a hub
  audit verify DIR --root root.json        check an export offline; non-zero exit on any problem
  bundle build MODEL.onnx --name N --version V --key release.key --out FILE [--schema schema.json]
  bundle inspect FILE [--json]             print a bundle's manifest
  bundle verify FILE --root root.json      check every signature and hash
  hub --data DIR --keys DIR [--mqtt-port 1883] [--http-port 8080] [--broker mqtt://HOST:PORT]
  publish FILE --hub URL                   upload a bundle to the hub
  deploy NAME@VERSION --hub URL (--all | --devices ID,...)
  devices list --hub URL [--json]
  rollout start NAME@VERSION [--rings FILE|canary:1,early:10,broad:100] [--auto-promote] [--window CRON] [--rate N/min] [--supersede]
  rollout status [ID] [--json] | watch [ID] | history ID
  rollout pause|resume|promote|abort|rollback ID [--reason TEXT]
  token create --role admin|operator|auditor | token list | token revoke ID
                                           API calls need FLEETCAST_TOKEN_FILE or FLEETCAST_TOKEN (first admin token: <hub data>/admin.token)
  sim --broker URL --agents N --root root.json
  drift report NAME@VERSION --hub URL [--ring R] [--since 15m] [--json]   drift per feature, worst first
  demo                                     run the whole flow on embedded defaults
`;

runMain(async (argv) => {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') { process.stdout.write(HELP); return cmd ? 0 : 2; }
  const load = COMMANDS[cmd];
  if (!load) { process.stderr.write(`fleetcast: unknown command ${JSON.stringify(cmd)}\n\n${HELP}`); return 2; }
  return (await load()).run(rest);
});
