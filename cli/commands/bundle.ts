/**
 * `fleetcast bundle build|inspect|verify`. Thin: parse arguments, call the
 * bundles room, print. Errors are FleetcastErrors; protocol/cli-main.ts prints them as
 * `error CODE: message` and exits non-zero.
 */
import { readFileSync } from 'node:fs';
import { buildBundle, parseSmokeDims } from '@fleetcast/bundle-build/build.js';
import { readExampleFile } from '@fleetcast/bundle-build/example-file.js';
import { ioError, bundleError } from '@fleetcast/bundles/errors.js';
import { readBundleFile } from '@fleetcast/bundles/read.js';
import { readSchemaFile } from '@fleetcast/bundle-build/schema-file.js';
import { readReferenceFile } from '@fleetcast/bundle-build/reference.js';
import { readGoldenFile } from '@fleetcast/bundle-build/golden-file.js';
import { bundleIdOf, verifyBundleFile } from '@fleetcast/bundles/verify.js';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import type { Manifest, TensorSpec } from '@fleetcast/protocol/manifest.js';
import { readKeyFile } from '@fleetcast/signing/keys.js';
import { loadRootText } from '@fleetcast/signing/root.js';
import { need, parseCli } from '@fleetcast/protocol/cli-args.js';

const USAGES = {
  build: 'fleetcast bundle build MODEL.onnx --name NAME --version N --key release.key [--key release2.key] --out FILE [--schema schema.json] [--reference DATA.csv|DATA.jsonl [--reference-bins N]] [--golden cases.json] [--example inputs.json] [--smoke-dims NAME=N,...] [--chunk-size BYTES] [--level 1-19]',
  inspect: 'fleetcast bundle inspect FILE [--json]',
  verify: 'fleetcast bundle verify FILE --root root.json',
};
const ALL_USAGE = Object.values(USAGES).map((u) => `  ${u}`).join('\n');
export const USAGE = ALL_USAGE;

function positiveInt(value: string, flag: string, usage: string): number {
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < 1) {
    throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `${flag} must be a positive integer, got ${JSON.stringify(value)}\nusage: ${usage}`, 2);
  }
  return Number(value);
}

function onePositional(positionals: string[], what: string, usage: string): string {
  if (positionals.length !== 1) throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `expected one ${what}, got ${positionals.length}\nusage: ${usage}`, 2);
  return positionals[0];
}

const kib = (n: number) => (n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`);
const dims = (t: TensorSpec) => `[${t.shape.join(', ')}]`;
const limitText = (v: number | number[] | undefined) => (v === undefined ? '' : Array.isArray(v) ? `[${v.join(', ')}]` : String(v));

function tensorLines(list: TensorSpec[]): string[] {
  const w = Math.max(...list.map((t) => t.name.length));
  return list.map((t) => {
    const extra = [
      t.features ? `features ${t.features.join(', ')}` : '',
      t.min !== undefined ? `min ${limitText(t.min)}` : '',
      t.max !== undefined ? `max ${limitText(t.max)}` : '',
      t.allowNaN ? 'NaN allowed' : '',
    ].filter(Boolean).join('  ');
    return `${t.name.padEnd(w)}  ${t.type.padEnd(7)}  ${dims(t)}${extra ? `  ${extra}` : ''}`;
  });
}

function describeManifest(m: Manifest, bundleId: string, keyids: string[]): string {
  const p = m.payload;
  const rows: [string, string | string[]][] = [
    ['bundle', `${m.name} v${m.version}`],
    ['id', bundleId],
    ['created', m.createdAt],
    ['model', `onnx, ${p.rawLength} bytes, sha256 ${p.rawSha256}`],
    ['payload', `zstd, ${p.compressedLength} bytes, sha256 ${p.compressedSha256}`],
    ['chunks', `${p.chunkHashes.length} of ${kib(p.chunkSize)}`],
    ['compat', Object.entries(m.compat).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : v}`).join(', ') || '-'],
    ['inputs', tensorLines(m.inputs)],
    ['outputs', tensorLines(m.outputs)],
    ...(m.golden ? [['golden', `${m.golden.length} case(s)`] as [string, string]] : []),
    ...(m.smokeDims ? [['smoke', `dims ${Object.entries(m.smokeDims).map(([k, v]) => `${k}=${v}`).join(',')}`] as [string, string]] : []),
    ...(m.description ? [['about', m.description] as [string, string]] : []),
    ['signed by', keyids.length ? keyids : ['(no signatures)']],
  ];
  const out: string[] = [];
  for (const [k, v] of rows) (Array.isArray(v) ? v : [v]).forEach((line, i) => out.push(`${(i === 0 ? k : '').padEnd(10)} ${line}`));
  return out.join('\n') + '\n';
}

async function build(argv: string[]): Promise<number> {
  const u = USAGES.build;
  const { values, positionals } = parseCli(argv, {
    name: { type: 'string' }, version: { type: 'string' }, key: { type: 'string', multiple: true }, out: { type: 'string' },
    schema: { type: 'string' }, 'chunk-size': { type: 'string' }, level: { type: 'string' },
    reference: { type: 'string' }, 'reference-bins': { type: 'string' }, golden: { type: 'string' },
    example: { type: 'string' }, 'smoke-dims': { type: 'string' },
  }, u);
  const model = onePositional(positionals, 'MODEL.onnx', u);
  const name = need(values.name, '--name', u);
  const version = positiveInt(need(values.version, '--version', u), '--version', u);
  const out = need(values.out, '--out', u);
  if (!values.key?.length) need(undefined, '--key', u);
  const keys = values.key!.map((path) => {
    const k = readKeyFile(path);
    // Only release keys sign bundles (DESIGN.md "Trust"); a hub or root key would fail on every device.
    if (k.role !== 'release') throw bundleError('BUNDLE_ERR_BAD_OPTION', `--key ${path} is a ${k.role} key; bundles are signed with release keys`);
    return k;
  });
  const b = await buildBundle({
    model, name, version, releaseKeys: keys, out,
    ...(values.schema ? { schema: readSchemaFile(values.schema) } : {}),
    ...(values.golden ? { golden: readGoldenFile(values.golden) } : {}),
    ...(values.example ? { examples: readExampleFile(values.example) } : {}),
    ...(values['smoke-dims'] ? { smokeDims: parseSmokeDims(values['smoke-dims']) } : {}),
    ...(values['chunk-size'] ? { chunkSize: positiveInt(values['chunk-size'], '--chunk-size', u) } : {}),
    ...(values.level ? { level: positiveInt(values.level, '--level', u) } : {}),
    ...(values.reference ? { reference: readReferenceFile(values.reference), referenceOptions: values['reference-bins'] ? { bins: positiveInt(values['reference-bins'], '--reference-bins', u) } : {} } : {}),
  });
  const p = b.manifest.payload;
  process.stdout.write(`wrote ${b.path}\n`);
  process.stdout.write(`  bundle ${b.manifest.name} v${b.manifest.version} id ${b.bundleId}\n`);
  process.stdout.write(`  model ${p.rawLength} bytes -> ${p.compressedLength} bytes zstd, ${p.chunkHashes.length} chunk(s) of ${kib(p.chunkSize)}\n`);
  if (b.manifest.golden) process.stdout.write(`  golden cases: ${b.manifest.golden.length}\n`);
  if (b.manifest.smokeDims) process.stdout.write(`  smoke dims: ${Object.entries(b.manifest.smokeDims).map(([k, v]) => `${k}=${v}`).join(',')}\n`);
  if (b.manifest.reference) process.stdout.write(`  reference profile: ${(b.manifest.reference as { features: unknown[] }).features.length} feature(s), ${(b.manifest.reference as { outputs: unknown[] }).outputs.length} output(s)\n`);
  process.stdout.write(`  signed by ${b.envelope.signatures.map((s) => s.keyid.slice(0, 16) + '…').join(', ')}\n`);
  return 0;
}

async function inspect(argv: string[]): Promise<number> {
  const u = USAGES.inspect;
  const { values, positionals } = parseCli(argv, { json: { type: 'boolean' } }, u);
  const file = onePositional(positionals, 'bundle FILE', u);
  const r = await readBundleFile(file);
  const bundleId = bundleIdOf(r.manifestBytes);
  if (values.json) {
    process.stdout.write(JSON.stringify({ bundleId, manifest: r.manifest, signatures: r.envelope.signatures }, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(describeManifest(r.manifest, bundleId, r.envelope.signatures.map((s) => s.keyid)));
  process.stdout.write(`\nSignatures and hashes were not checked; run \`fleetcast bundle verify ${file} --root root.json\`.\n`);
  return 0;
}

async function verify(argv: string[]): Promise<number> {
  const u = USAGES.verify;
  const { values, positionals } = parseCli(argv, { root: { type: 'string' } }, u);
  const file = onePositional(positionals, 'bundle FILE', u);
  const rootPath = need(values.root, '--root', u);
  let text: string;
  try { text = readFileSync(rootPath, 'utf8'); } catch (e) { throw ioError('cannot read --root', rootPath, e); }
  const root = loadRootText(text);
  const v = await verifyBundleFile(file, root, { decompress: true });
  const m = v.manifest;
  process.stdout.write(`ok ${m.name} v${m.version} ${v.bundleId} (root v${root.version}: release signatures meet threshold ${root.roles.release.threshold}; ${m.payload.chunkHashes.length} chunk hashes, payload sha256, model length and sha256 match)\n`);
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'build': return build(rest);
    case 'inspect': return inspect(rest);
    case 'verify': return verify(rest);
    default:
      process.stderr.write(`usage:\n${ALL_USAGE}\n`);
      return sub === '--help' || sub === '-h' ? 0 : 2;
  }
}
