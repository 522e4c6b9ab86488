/**
 * `fleetcast audit export --hub URL --out DIR`: copy the transparency log and
 * what it refers to out of a hub into a folder (format: signing/audit-export-format.ts).
 * Nothing here is trusted by the verifier; it only collects.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { EXPORT_FORMAT } from '@fleetcast/signing/audit-export-format.js';
import { decodeEntry } from '@fleetcast/signing/log-entry.js';
import { hubError } from '@fleetcast/hub/errors.js';

async function get<T>(base: string, path: string, token: string | undefined): Promise<T> {
  const url = `${base}${path}`;
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  } catch (e) {
    throw hubError('HUB_ERR_UNREACHABLE', `GET ${url}: ${(e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message}`);
  }
  const body = (await res.json().catch(() => null)) as { error?: { code: string; message: string } } | null;
  if (!res.ok) {
    if (body?.error?.code) throw new FleetcastError(body.error.code, body.error.message, res.status);
    throw hubError('HUB_ERR_BAD_RESPONSE', `GET ${url} answered ${res.status}`);
  }
  return body as T;
}

export async function exportAudit(hubUrl: string, out: string, opts: { token?: string; now?: number } = {}): Promise<{ size: number; checkpoints: number; installs: number; claims: number }> {
  const base = hubUrl.replace(/\/+$/, '');
  const { token } = opts;
  // The checkpoint first: everything exported is then read up to exactly its size.
  const latest = await get<{ size: number }>(base, '/v1/log/checkpoint', token);
  const size = latest.size;
  const entries: { index: number; data: string }[] = [];
  while (entries.length < size) {
    const page = await get<{ entries: { index: number; data: string }[] }>(base, `/v1/log/entries?start=${entries.length}&end=${size}`, token);
    if (page.entries.length === 0) throw hubError('HUB_ERR_BAD_RESPONSE', `the hub returned no entries from ${entries.length} of ${size}`);
    entries.push(...page.entries);
  }
  const checkpoints: { size: number; checkpoint: string; createdAt: number }[] = [];
  for (;;) {
    const from = checkpoints.length ? checkpoints[checkpoints.length - 1].size + 1 : 0;
    const page = await get<{ checkpoints: typeof checkpoints }>(base, `/v1/log/checkpoints?from=${from}`, token);
    const mine = page.checkpoints.filter((c) => c.size <= size);
    checkpoints.push(...mine);
    if (mine.length < page.checkpoints.length || page.checkpoints.length === 0) break;
  }
  // Installs are read from the leaves themselves (the log is the evidence); what no leaf covers yet
  // (pending installs) and what the device claimed beyond its assignments go to claims.json.
  const { pending } = await get<{ pending: unknown[] }>(base, '/v1/log/installs', token);
  const { claims } = await get<{ claims: unknown[] }>(base, '/v1/log/claims', token);

  mkdirSync(join(out, 'roots'), { recursive: true });
  mkdirSync(join(out, 'manifests'), { recursive: true });
  const decisions: string[] = [];
  const installs: unknown[] = [];
  for (const e of entries) {
    const entry = decodeEntry(Buffer.from(e.data, 'base64'), `log entry ${e.index}`);
    if (entry.kind === 'root') writeFileSync(join(out, 'roots', `root-${entry.version}.json`), JSON.stringify(entry.envelope, null, 2) + '\n');
    else if (entry.kind === 'manifest') writeFileSync(join(out, 'manifests', `${entry.bundleId}.json`), JSON.stringify(entry.envelope, null, 2) + '\n');
    else if (entry.kind === 'installs') for (const i of entry.installs) installs.push({ ...i, logIndex: e.index });
    else decisions.push(JSON.stringify({ index: e.index, entry }));
  }
  const lines = (xs: unknown[]) => xs.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join('\n') + (xs.length ? '\n' : '');
  writeFileSync(join(out, 'entries.jsonl'), lines(entries));
  writeFileSync(join(out, 'checkpoints.jsonl'), lines(checkpoints));
  writeFileSync(join(out, 'decisions.jsonl'), lines(decisions));
  writeFileSync(join(out, 'installs.json'), JSON.stringify({ installs }, null, 2) + '\n');
  writeFileSync(join(out, 'claims.json'), JSON.stringify({ claims, pending }, null, 2) + '\n');
  writeFileSync(join(out, 'export.json'), JSON.stringify({ format: EXPORT_FORMAT, hub: base, exportedAt: opts.now ?? Date.now(), size }, null, 2) + '\n');
  return { size, checkpoints: checkpoints.length, installs: installs.length, claims: claims.length + pending.length };
}
