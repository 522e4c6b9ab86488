/** Thin argument parsing for the CLIs: node:util parseArgs, strict, with coded errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FleetcastError } from '../protocol/errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parseCli<O extends Options>(argv: string[], options: O, usage: string) {
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
