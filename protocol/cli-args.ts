/** Thin argument parsing for the CLIs: node:util parseArgs, strict, with coded errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync } from 'node:fs';
import { FleetcastError, PROTOCOL_ERRORS } from './errors.js';

const PROTOCOL_SECRET_MESSAGE = PROTOCOL_ERRORS.PROTO_ERR_SECRET_IN_ARGV.message;

export type Options = NonNullable<ParseArgsConfig['options']>;

/** What parseArgs returns for these options (named, so the package's declaration file can say it). */
export type ParsedCli<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;

export function parseCli<O extends Options>(argv: string[], options: O, usage: string): ParsedCli<O> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `${(e as Error).message}\nusage: ${usage}`, 2);
  }
}

export function need(value: string | undefined, flag: string, usage: string): string {
  if (value === undefined || value === '') throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `${flag} is required\nusage: ${usage}`, 2);
  return value;
}

/**
 * Secrets never travel on the command line: argv is readable by every local user
 * (/proc/PID/cmdline, ps) and kept by shell history, so the flag is refused
 * (exit 2) rather than warned about: by the time a warning prints, the secret
 * has already been exposed. The message names where to put it instead.
 */
export function refuseSecretFlag(value: string | undefined, flag: string, instead: string): void {
  if (value !== undefined) throw new FleetcastError('PROTO_ERR_SECRET_IN_ARGV', `${PROTOCOL_SECRET_MESSAGE} (${flag}: use ${instead})`, 2);
}

/**
 * A secret from a file (trailing newline trimmed) or, failing that, an environment variable.
 * An unreadable or empty file is a usage error naming the file.
 */
export function secretFrom(file: string | undefined, fileFlag: string, envVar: string): string | undefined {
  if (file !== undefined) {
    let text: string;
    try { text = readFileSync(file, 'utf8').replace(/\r?\n$/, ''); } catch (e) {
      throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `${fileFlag} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 2);
    }
    if (text === '') throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `${fileFlag} ${file} is empty`, 2);
    return text;
  }
  const v = process.env[envVar];
  return v === undefined || v === '' ? undefined : v;
}
