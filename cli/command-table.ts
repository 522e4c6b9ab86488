/**
 * Every `fleetcast` command as data: its name, its subcommands and where its
 * module is. The entry point dispatches from it, answers `--help` from it, and
 * the CLI test walks it, so a command added here without a usage fails a test.
 */
import { ROLLOUT_ACTION_NAMES } from '@fleetcast/hub/rollouts/actions.js';

export interface CommandModule { run(argv: string[]): Promise<number>; USAGE: string }

export interface CommandEntry {
  name: string;
  /** Subcommands (the first positional); empty when the command has none. */
  subcommands: readonly string[];
  load(): Promise<CommandModule>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'keys', subcommands: ['init', 'gen', 'rotate', 'add', 'revoke'], load: () => import('./commands/keys.js') },
  { name: 'bundle', subcommands: ['build', 'inspect', 'verify'], load: () => import('./commands/bundle.js') },
  { name: 'model', subcommands: ['example'], load: () => import('./commands/model.js') },
  { name: 'hub', subcommands: [], load: () => import('./commands/hub.js') },
  { name: 'publish', subcommands: [], load: () => import('./commands/publish.js') },
  { name: 'deploy', subcommands: [], load: () => import('./commands/deploy.js') },
  { name: 'devices', subcommands: ['list', 'get'], load: () => import('./commands/devices.js') },
  { name: 'device', subcommands: ['enroll', 'revoke', 'debug'], load: () => import('./commands/device.js') },
  { name: 'rollout', subcommands: ['start', 'status', 'watch', 'history', ...ROLLOUT_ACTION_NAMES], load: () => import('./commands/rollout.js') },
  { name: 'drift', subcommands: ['report'], load: () => import('./commands/drift.js') },
  { name: 'token', subcommands: ['create', 'list', 'labels', 'revoke'], load: () => import('./commands/token.js') },
  { name: 'audit', subcommands: ['export', 'verify'], load: () => import('./commands/audit.js') },
  { name: 'sim', subcommands: [], load: () => import('./commands/sim.js') },
  { name: 'demo', subcommands: [], load: () => import('./commands/demo.js') },
];

export const commandNamed = (name: string): CommandEntry | undefined => COMMANDS.find((c) => c.name === name);

/** `--help` or `-h` anywhere before a `--` asks for usage instead of running anything (a hub must not start on `hub --help`). */
export function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h');
}
