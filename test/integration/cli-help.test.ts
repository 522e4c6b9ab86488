/**
 * The compiled `fleetcast` behaves like the tools operators already use:
 * `--help`/`-h` on every command and subcommand of the command table prints
 * its usage on stdout and exits 0 without running anything, `--version`
 * prints the package's version, and a reader that goes away (`| head -1`)
 * ends the process quietly instead of with an EPIPE stack trace.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../cli/command-table.js';
import { buildCli } from '../helpers/build-cli.js';
import { runCli, runIntoClosedPipe } from '../helpers/cli-run.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let CLI = '';

const fleetcast = (...args: string[]) => runCli(ROOT, CLI, args, { ...process.env, FLEETCAST_TOKEN: '', FLEETCAST_TOKEN_FILE: '' });

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('fleetcast --help, -h and --version', () => {
  beforeAll(async () => { CLI = await buildCli(ROOT); }, 180_000);

  it('Help_on_every_command_and_subcommand: each entry of the command table answers --help and -h with its usage and exit 0', async () => {
    const top = await fleetcast('--help');
    expect(top.code).toBe(0);
    const missing: string[] = [];
    for (const c of COMMANDS) {
      expect(top.stdout, `top-level help lists ${c.name}`).toMatch(new RegExp(`^  ${c.name}\\b`, 'm'));
      // hub and sim would start a server or a fleet if --help were not intercepted; they must not (the call returns).
      const calls = [[c.name, '--help'], [c.name, '-h'], ...c.subcommands.map((s) => [c.name, s, '--help'])];
      for (const argv of calls) {
        const r = await fleetcast(...argv);
        const sub = argv.length === 3 ? argv[1] : undefined;
        // The usage names the command (and the subcommand, possibly among alternatives: `rollout pause|resume ID`).
        const shape = new RegExp(`fleetcast ${c.name}${sub ? ` (\\S+\\|)*${escape(sub)}\\b` : '\\b'}`);
        if (r.code !== 0 || !r.stdout.startsWith('usage:') || !shape.test(r.stdout)) missing.push(`${argv.join(' ')} → exit ${r.code}: ${(r.stdout + r.stderr).slice(0, 200)}`);
      }
    }
    expect(missing).toEqual([]);
  }, 300_000);

  it('Docs_name_real_flags: every `fleetcast CMD … --flag` in docs/errors.md and README.md names a command of the table and flags its usage lists', async () => {
    const wrong: string[] = [];
    for (const doc of ['docs/errors.md', 'README.md']) {
      const text = readFileSync(join(ROOT, doc), 'utf8');
      for (const [, span] of text.matchAll(/`(fleetcast [^`]+)`/g)) {
        const words = span.split(/\s+/);
        if (words[1].startsWith('-')) continue; // `fleetcast --help`
        // `fleetcast deploy|rollout start --allow-unknown` names two commands.
        for (const name of words[1].replace(/\\/g, '').split('|')) {
          const entry = COMMANDS.find((c) => c.name === name);
          if (!entry) { wrong.push(`${doc}: ${span}: no command ${name}`); continue; }
          const usage = (await entry.load()).USAGE;
          for (const flag of words.filter((w) => /^--[a-z]/.test(w)).map((w) => w.replace(/[=,.;:)].*$/, ''))) {
            // Whole flags only: `--key` must not pass because the usage lists `--keys` or `--key-file`.
            if (!new RegExp(`${flag}(?![A-Za-z0-9-])`).test(usage)) wrong.push(`${doc}: ${span}: ${name} has no ${flag}`);
          }
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it('--version prints the package version; an unknown command lists the commands and exits 2', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(await fleetcast('--version')).toMatchObject({ code: 0, stdout: `fleetcast ${pkg.version}\n` });
    const bad = await fleetcast('devicez');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown command "devicez" (commands: keys, bundle');
  }, 60_000);

  it('Closed_pipe_is_not_a_crash: a reader that closes its end (`| head -1`) ends the CLI with status 141 and no stack trace', async () => {
    const r = await runIntoClosedPipe(ROOT, CLI, ['--help'], process.env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(141);
  }, 60_000);
});
