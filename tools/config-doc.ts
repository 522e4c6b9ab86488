/**
 * docs/agent-config.md and docs/hub-config.md are generated from the options
 * schemas, so the reference a person reads is what the code validates: key, type,
 * default and range come from the schema objects themselves (their JSON Schema),
 * the description from the doc comment above each key in the schema's source.
 *
 * Why parse the comments (with the TypeScript compiler) rather than add a `doc`
 * string to every schema node: the comments are already where a reader of the
 * code looks, every option has exactly one description, and a key added by
 * anyone with a comment shows up in the reference with no second place to edit.
 * A key without a comment fails the docs test (test/unit/config-doc.test.ts).
 *
 * `npm run docs:config` rewrites both files; the test fails when they are stale.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { envName } from '@fleetcast/agent/config.js';
import { agentOptionsSchema } from '@fleetcast/agent/options.js';
import { telemetryOptionsSchema as agentTelemetrySchema } from '@fleetcast/agent/telemetry/collector.js';
import { eventOptionsSchema } from '@fleetcast/hub/events/options.js';
import { hubOptionsSchema } from '@fleetcast/hub/options.js';
import { telemetryOptionsSchema as hubTelemetrySchema } from '@fleetcast/hub/telemetry/options.js';

type Json = Record<string, unknown>;
interface ObjSchema { json: Json; shape: Record<string, { json: Json; optional?: boolean }> }

/** One object of options: its schema, where its comments live, and how a key reaches it. */
export interface OptionsSection {
  title: string;
  schema: ObjSchema;
  /** Repository-relative source file and the exported const that holds the `obj({...})`. */
  source: string;
  exportName: string;
  /** Dotted prefix of nested keys (`telemetry.`). */
  prefix: string;
  /** The environment variable of a top-level key, if the process reads one. */
  env?: (key: string) => string;
}

/** The repository root, from src (tools/) or compiled (dist/tools/) alike. */
function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'tsconfig.build.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('tools/config-doc: cannot find the repository root (tsconfig.build.json)');
    d = up;
  }
  return d;
}

/** key → doc comment text of each property of `export const NAME = obj({ … })` in `file`. */
export function schemaComments(file: string, exportName: string): Map<string, string> {
  const path = join(repoRoot(), file);
  const sf = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
  const out = new Map<string, string>();
  let found = false;
  const visit = (n: ts.Node): void => {
    if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name) && n.name.text === exportName && n.initializer && ts.isCallExpression(n.initializer)) {
      const arg = n.initializer.arguments[0];
      if (arg && ts.isObjectLiteralExpression(arg)) {
        found = true;
        for (const p of arg.properties) {
          if (!p.name || !(ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) continue;
          const text = commentText(sf, p);
          if (text) out.set(p.name.text, text);
        }
      }
      return;
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  if (!found) throw new Error(`tools/config-doc: no \`${exportName} = obj({...})\` in ${file}`);
  return out;
}

/** The last /** … *\/ block right above a property, as one paragraph of text. */
function commentText(sf: ts.SourceFile, node: ts.Node): string | null {
  const ranges = ts.getLeadingCommentRanges(sf.text, node.getFullStart()) ?? [];
  const docs = ranges.filter((r) => sf.text.startsWith('/**', r.pos));
  const last = docs.at(-1);
  if (!last) return null;
  return sf.text.slice(last.pos + 3, last.end - 2)
    .split('\n')
    .map((l) => l.replace(/^\s*\*\s?/, '').trim())
    .filter(Boolean)
    .join(' ');
}

function typeOf(j: Json): string {
  if (Array.isArray(j.anyOf)) return (j.anyOf as Json[]).map(typeOf).join(' | ');
  if (j.type === 'object') return 'object';
  if (j.type === 'array') return `${typeOf((j.items ?? {}) as Json)}[]`;
  if (j.const !== undefined) return JSON.stringify(j.const);
  return typeof j.type === 'string' ? j.type : 'any';
}

function rangeOf(j: Json): string {
  if (Array.isArray(j.anyOf)) return (j.anyOf as Json[]).map(rangeOf).filter(Boolean).join('; ');
  const parts: string[] = [];
  if (Array.isArray(j.enum)) parts.push((j.enum as unknown[]).map((v) => `\`${String(v)}\``).join(', '));
  const lo = j.minimum ?? j.minLength;
  const hi = j.maximum ?? j.maxLength;
  const unit = j.minLength !== undefined || j.maxLength !== undefined ? ' chars' : '';
  if (lo !== undefined && hi !== undefined) parts.push(`${fmt(lo)} … ${fmt(hi)}${unit}`);
  else if (lo !== undefined) parts.push(`≥ ${fmt(lo)}${unit}`);
  else if (hi !== undefined) parts.push(`≤ ${fmt(hi)}${unit}`);
  if (typeof j.pattern === 'string') parts.push(`matches \`${j.pattern}\``);
  return parts.join('; ');
}

function fmt(v: unknown): string {
  return typeof v === 'number' && Number.isSafeInteger(v) && Math.abs(v) >= 10_000 ? v.toLocaleString('en-US').replace(/,/g, '_') : String(v);
}

function defaultOf(j: Json, optional: boolean): string {
  if ('default' in j) {
    const d = j.default;
    // A nested object's default is the defaults of its keys, listed in its own section.
    if (d !== null && typeof d === 'object' && !Array.isArray(d) && Object.keys(d).length > 0) return 'see below';
    return `\`${JSON.stringify(d)}\``;
  }
  return optional ? 'unset' : '**required**';
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The rows of one section; throws naming a key that has no doc comment. */
export function renderSection(s: OptionsSection): string[] {
  const comments = schemaComments(s.source, s.exportName);
  const head = s.env ? '| key | type | default | range / values | environment variable | description |' : '| key | type | default | range / values | description |';
  const lines = [`### ${s.title}`, '', head, s.env ? '|---|---|---|---|---|---|' : '|---|---|---|---|---|'];
  for (const [key, node] of Object.entries(s.schema.shape)) {
    const doc = comments.get(key);
    if (!doc) throw new Error(`${s.source}: option ${s.prefix}${key} has no /** doc comment */; add one (it is the reference text)`);
    const row = [`\`${s.prefix}${key}\``, typeOf(node.json), defaultOf(node.json, node.optional === true), rangeOf(node.json) || '—'];
    if (s.env) row.push(`\`${s.env(key)}\``);
    row.push(doc);
    lines.push(`| ${row.map(cell).join(' | ')} |`);
  }
  lines.push('');
  return lines;
}

export const AGENT_SECTIONS: OptionsSection[] = [
  { title: 'Agent options', schema: agentOptionsSchema as unknown as ObjSchema, source: 'agent/options.ts', exportName: 'agentOptionsSchema', prefix: '', env: envName },
  { title: '`telemetry` (an object; as a variable, JSON)', schema: agentTelemetrySchema as unknown as ObjSchema, source: 'agent/telemetry/collector.ts', exportName: 'telemetryOptionsSchema', prefix: 'telemetry.' },
];

export const HUB_SECTIONS: OptionsSection[] = [
  { title: 'Hub options', schema: hubOptionsSchema as unknown as ObjSchema, source: 'hub/options.ts', exportName: 'hubOptionsSchema', prefix: '' },
  { title: '`telemetry` (an object)', schema: hubTelemetrySchema as unknown as ObjSchema, source: 'hub/telemetry/options.ts', exportName: 'telemetryOptionsSchema', prefix: 'telemetry.' },
  { title: '`events` (an object)', schema: eventOptionsSchema as unknown as ObjSchema, source: 'hub/events/options.ts', exportName: 'eventOptionsSchema', prefix: 'events.' },
];

const GENERATED = 'Generated from the options schema by `npm run docs:config`; do not edit by hand (a test fails when it is stale).';

export function renderAgentConfigDoc(): string {
  return [
    '# fleetcast-agent configuration',
    '',
    GENERATED,
    '',
    'Every option comes from, in increasing precedence: the JSON file given with `--config`, a',
    '`FLEETCAST_AGENT_*` environment variable (systemd `Environment=` / `EnvironmentFile=`), and the',
    'command-line flags `--broker` (brokerUrl), `--device-id` (deviceId), `--data` (dataDir), `--root`',
    '(rootPath), `--listen`, `--runtime`, `--log-level`, `--log-format`. Unknown keys and variables are',
    'refused by name; a bad value stops the start with the key named and exit status 2 (a configuration',
    'error: the systemd unit does not restart). Numbers in variables are parsed as numbers, booleans as',
    '`true` or `false`, objects as JSON, and `null` or `none` sets a nullable key to null.',
    '',
    ...AGENT_SECTIONS.flatMap(renderSection),
  ].join('\n');
}

export function renderHubConfigDoc(): string {
  return [
    '# fleetcast hub configuration',
    '',
    GENERATED,
    '',
    'The options of `startHub` (hub/hub.ts). `fleetcast hub` maps its flags onto these keys (see',
    '`fleetcast hub --help`); `--telemetry` takes the `telemetry` object as JSON or a JSON file. Unknown',
    'keys are refused by name; defaults live in the schema only.',
    '',
    ...HUB_SECTIONS.flatMap(renderSection),
  ].join('\n');
}
