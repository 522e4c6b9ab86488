/**
 * The folder `fleetcast audit export` writes and `fleetcast audit verify` reads.
 * The log itself (entries.jsonl, checkpoints.jsonl) is the evidence; the other
 * files are conveniences for people and are checked against the log, so an
 * edit to any of them is caught as well.
 *
 *   export.json          { format, hub, exportedAt, size }
 *   entries.jsonl        {"index": i, "data": base64 of leaf i's exact bytes}
 *   checkpoints.jsonl    {"size": n, "checkpoint": signed note, "createdAt": ms}
 *   roots/root-<N>.json  root envelopes (also leaves)
 *   manifests/<id>.json  release-signed manifest envelopes (also leaves)
 *   decisions.jsonl      {"index": i, "entry": deployment or rollout decision} (also leaves)
 *   installs.json        {"installs": [{deviceId, bundleId, counter, at, receivedAt, seq, logIndex}]}: the
 *                        installs the log's `installs` leaves hold (also leaves), in log order
 *   claims.json          {"claims": [...], "pending": [...]}: what devices said that no signature covers —
 *                        events for bundles never assigned to them, and installs not yet in a leaf. The
 *                        report lists them as unverified device claims; they can neither pass nor fail an audit.
 *                        (Optional: an export without it has no claims.)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { signingError } from './errors.js';

export const EXPORT_FORMAT = 'fleetcast.audit-export/v2';

export interface ExportData {
  meta: { format: string; hub: string; exportedAt: number; size: number };
  entries: { index: number; data: Buffer }[];
  checkpoints: { size: number; checkpoint: string; createdAt: number; line: number }[];
  roots: { file: string; value: unknown }[];
  manifests: { file: string; value: unknown }[];
  decisions: { index: number; entry: unknown; line: number }[];
  installs: { deviceId: string; bundleId: string; counter: number; at: number; receivedAt: number; seq: number; logIndex: number }[];
  claims: { claims: unknown[]; pending: unknown[] };
}

function readJson(path: string): unknown {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw signingError('SIGN_ERR_AUDIT_EXPORT', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
  try { return JSON.parse(text); } catch { throw signingError('SIGN_ERR_AUDIT_EXPORT', `${path} is not JSON`); }
}

function readLines(path: string): { value: Record<string, unknown>; line: number }[] {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw signingError('SIGN_ERR_AUDIT_EXPORT', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
  return text.split('\n').map((l, i) => ({ l, i })).filter(({ l }) => l.trim() !== '').map(({ l, i }) => {
    try {
      const value = JSON.parse(l) as unknown;
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
      return { value: value as Record<string, unknown>, line: i + 1 };
    } catch { throw signingError('SIGN_ERR_AUDIT_EXPORT', `${path} line ${i + 1} is not a JSON object`); }
  });
}

function readFolder(dir: string): { file: string; value: unknown }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => ({ file: join(dir, f), value: readJson(join(dir, f)) }));
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

export function readExport(dir: string): ExportData {
  const meta = readJson(join(dir, 'export.json')) as ExportData['meta'];
  if (meta?.format !== EXPORT_FORMAT) throw signingError('SIGN_ERR_AUDIT_EXPORT', `${join(dir, 'export.json')} is not a ${EXPORT_FORMAT} export`);
  const entries = readLines(join(dir, 'entries.jsonl')).map(({ value, line }) => {
    if (!isCount(value.index) || typeof value.data !== 'string') throw signingError('SIGN_ERR_AUDIT_EXPORT', `entries.jsonl line ${line} needs an index and base64 data`);
    return { index: value.index, data: Buffer.from(value.data, 'base64') };
  });
  const checkpoints = readLines(join(dir, 'checkpoints.jsonl')).map(({ value, line }) => {
    if (!isCount(value.size) || typeof value.checkpoint !== 'string') throw signingError('SIGN_ERR_AUDIT_EXPORT', `checkpoints.jsonl line ${line} needs a size and a checkpoint`);
    return { size: value.size, checkpoint: value.checkpoint, createdAt: isCount(value.createdAt) ? value.createdAt : 0, line };
  });
  const decisions = readLines(join(dir, 'decisions.jsonl')).map(({ value, line }) => {
    if (!isCount(value.index)) throw signingError('SIGN_ERR_AUDIT_EXPORT', `decisions.jsonl line ${line} needs an index`);
    return { index: value.index, entry: value.entry, line };
  });
  const inst = readJson(join(dir, 'installs.json')) as { installs?: unknown };
  if (!Array.isArray(inst?.installs)) throw signingError('SIGN_ERR_AUDIT_EXPORT', 'installs.json needs an installs list');
  const claimsFile = join(dir, 'claims.json');
  const cl = (existsSync(claimsFile) ? readJson(claimsFile) : { claims: [], pending: [] }) as { claims?: unknown; pending?: unknown };
  if (!Array.isArray(cl?.claims) || !Array.isArray(cl?.pending)) throw signingError('SIGN_ERR_AUDIT_EXPORT', 'claims.json needs claims and pending lists');
  return {
    meta, entries, checkpoints, roots: readFolder(join(dir, 'roots')), manifests: readFolder(join(dir, 'manifests')), decisions,
    installs: inst.installs as ExportData['installs'], claims: { claims: cl.claims, pending: cl.pending },
  };
}
