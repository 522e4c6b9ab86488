/**
 * docs/errors.md is generated from the rooms' error tables, so the list a person
 * reads is the list the code throws. `npm run docs:errors` rewrites it; a unit
 * test fails when the two drift apart or a code appears in two tables.
 */
import type { ErrorTable } from '../protocol/errors.js';

const ROOMS = ['protocol', 'signing', 'bundles', 'agent', 'hub'] as const;

export async function collectErrorTables(): Promise<{ room: string; table: ErrorTable }[]> {
  const out: { room: string; table: ErrorTable }[] = [];
  for (const room of ROOMS) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(`../${room}/errors.js`)) as Record<string, unknown>;
    } catch {
      continue;
    }
    for (const v of Object.values(mod)) {
      if (v && typeof v === 'object' && Object.keys(v).length > 0 && Object.keys(v).every((k) => /^[A-Z]+_ERR_[A-Z0-9_]+$/.test(k))) {
        out.push({ room, table: v as ErrorTable });
      }
    }
  }
  return out;
}

export async function renderErrorsDoc(): Promise<string> {
  const tables = await collectErrorTables();
  const lines = [
    '# Error codes',
    '',
    'Generated from each room\'s `errors.ts` by `npm run docs:errors`; do not edit by hand.',
    'Codes are stable and never reused. Devices report codes, not prose. Every error',
    'a process prints or answers carries one of these codes.',
    '',
  ];
  for (const { room, table } of tables) {
    lines.push(`## ${room}/`, '', '| code | HTTP | meaning and what to do |', '|---|---|---|');
    for (const [code, spec] of Object.entries(table)) lines.push(`| \`${code}\` | ${spec.status} | ${spec.message.replace(/\|/g, '\\|')} |`);
    lines.push('');
  }
  return lines.join('\n');
}
