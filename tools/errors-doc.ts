/**
 * docs/errors.md is generated from the rooms' error tables, so the list a person
 * reads is the list the code throws. `npm run docs:errors` rewrites it; a unit
 * test fails when the two drift apart or a code appears in two tables.
 */
import type { ErrorTable } from '@fleetcast/protocol/errors.js';

import { PROTOCOL_ERRORS } from '@fleetcast/protocol/errors.js';
import { SIGNING_ERRORS } from '@fleetcast/signing/errors.js';
import { MERKLE_ERRORS } from '@fleetcast/signing/merkle.js';
import { CHECKPOINT_ERRORS } from '@fleetcast/signing/checkpoint.js';
import { BUNDLE_ERRORS } from '@fleetcast/bundles/errors.js';
import { AGENT_ERRORS } from '@fleetcast/agent/errors.js';
import { HUB_ERRORS } from '@fleetcast/hub/errors.js';
import { SIM_ERRORS } from '@fleetcast/simulator/errors.js';

/** Every error table, by room. A new table is added here once (static imports keep it checkable). */
const TABLES: { room: string; table: ErrorTable }[] = [
  { room: 'protocol', table: PROTOCOL_ERRORS },
  { room: 'signing', table: SIGNING_ERRORS },
  { room: 'signing', table: MERKLE_ERRORS },
  { room: 'signing', table: CHECKPOINT_ERRORS },
  { room: 'bundles', table: BUNDLE_ERRORS },
  { room: 'agent', table: AGENT_ERRORS },
  { room: 'hub', table: HUB_ERRORS },
  { room: 'simulator', table: SIM_ERRORS },
];

export async function collectErrorTables(): Promise<{ room: string; table: ErrorTable }[]> {
  return TABLES;
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
  let last = '';
  for (const { room, table } of tables) {
    if (room !== last) lines.push(`## ${room}/`, '');
    last = room;
    lines.push('| code | HTTP | meaning and what to do |', '|---|---|---|');
    for (const [code, spec] of Object.entries(table)) lines.push(`| \`${code}\` | ${spec.status} | ${spec.message.replace(/\|/g, '\\|')} |`);
    lines.push('');
  }
  return lines.join('\n');
}
