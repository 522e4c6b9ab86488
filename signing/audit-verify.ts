/**
 * The offline auditor (`fleetcast audit verify DIR --root root.json`). It trusts
 * only the root.json the auditor brings, never the hub: every root version in
 * the log must chain to it (each N+1 cross-signed by N, signing/root-rotation.ts),
 * every manifest must carry a release-key threshold of the root in force where
 * it was logged, every checkpoint must be signed by a hub key of that chain and
 * commit to exactly the leaves exported (RFC 9162 2.1.3 inclusion of every leaf,
 * 2.1.4 consistency between every pair of consecutive checkpoints and with any
 * checkpoint the auditor kept from an earlier audit), and every install in the
 * log must be of a logged, signed bundle assigned to that device by a deployment
 * logged before it. Installs are counted from the log only; what devices said
 * that no signature covers is listed as unverified claims. Every problem names
 * the entry; any problem fails the audit.
 *
 * Lives in signing/ because it needs only protocol + signing: an auditor runs it
 * without the hub's code, and nothing it checks depends on the hub being honest.
 */
import { createHash } from 'node:crypto';
import { PAYLOAD_TYPES, parseEnvelope, type Envelope } from '@fleetcast/protocol/envelope.js';
import { errorCode } from '@fleetcast/protocol/errors.js';
import { manifestSchema } from '@fleetcast/protocol/manifest.js';
import { parse } from '@fleetcast/protocol/schema.js';
import { verifyCheckpoint } from './checkpoint.js';
import { verifyEnvelopeWith } from './envelope.js';
import type { ExportData } from './audit-export-format.js';
import { decodeEntry, type DeploymentEntry, type LogEntry } from './log-entry.js';
import { LOG_ORIGIN, logVerifiers } from './log-keys.js';
import { leafHash, MerkleTree, verifyConsistency, verifyInclusion } from './merkle.js';
import { loadRoot, type TrustedRoot } from './root.js';
import { verifyNextRoot } from './root-rotation.js';

export interface AuditProblem { entry: string; code: string; message: string }

export interface AuditReport {
  ok: boolean;
  problems: AuditProblem[];
  logSize: number;
  rootVersions: number[];
  checkpoints: number;
  /** Per model version: how many distinct devices reported installing it, and when. */
  models: { name: string; version: number; bundleId: string; devices: number; firstInstall: number | null; lastInstall: number | null }[];
  /** Who approved each step: deployments and rollout decisions, in log order. */
  approvals: { index: number; kind: string; actor: string; at: number; what: string }[];
  /** What devices said that no signature covers (claims.json): listed, never counted as installs. */
  unverified: { deviceId: string; kind: string; bundleId: string; at: number | null; why: string }[];
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

export function verifyAudit(data: ExportData, trustedRootEnvelope: unknown, opts: { knownCheckpoints?: { name: string; text: string }[] } = {}): AuditReport {
  const problems: AuditProblem[] = [];
  const fail = (entry: string, e: unknown, code?: string) => problems.push({ entry, code: code ?? errorCode(e), message: e instanceof Error ? e.message : String(e) });
  const anchor = loadRoot(trustedRootEnvelope, { allowExpired: true });

  // 1. Leaves: contiguous indices, decodable entries.
  const tree = new MerkleTree();
  const entries: (LogEntry | null)[] = [];
  data.entries.forEach((e, i) => {
    if (e.index !== i) fail(`entries.jsonl line ${i + 1}`, new Error(`index ${e.index} where ${i} was expected (entries missing, duplicated or out of order)`), 'SIGN_ERR_AUDIT_MISMATCH');
    tree.append(leafHash(e.data));
    try { entries.push(decodeEntry(e.data, `log entry ${i}`)); } catch (err) { entries.push(null); fail(`log[${i}]`, err, 'SIGN_ERR_AUDIT_MISMATCH'); }
  });
  const n = tree.size;

  // 2. Roots: the chain of root entries must pass through the auditor's root, each step N → N+1.
  const rootAt: (TrustedRoot | null)[] = new Array(n).fill(null); // root in force at each leaf
  const chain: TrustedRoot[] = [];
  const rootIdx = entries.flatMap((e, i) => (e?.kind === 'root' ? [i] : []));
  const anchorPos = rootIdx.findIndex((i) => (entries[i] as { version: number }).version === anchor.version);
  if (anchorPos < 0) fail('roots', new Error(`the log has no root v${anchor.version} (the root given with --root)`), 'SIGN_ERR_AUDIT_MISMATCH');
  else {
    const anchorEnv = (entries[rootIdx[anchorPos]] as { envelope: Envelope }).envelope;
    if (anchorEnv.payload !== anchor.envelope.payload) fail(`log[${rootIdx[anchorPos]}]`, new Error(`root v${anchor.version} in the log is not the root given with --root`), 'SIGN_ERR_AUDIT_MISMATCH');
    // Earlier roots: the chain from the first one must arrive at the anchor.
    let prev: TrustedRoot | null = null;
    for (const [k, i] of rootIdx.entries()) {
      const e = entries[i] as { version: number; envelope: Envelope };
      try {
        const r: TrustedRoot = k === anchorPos ? anchor : prev ? verifyNextRoot(prev, e.envelope) : loadRoot(e.envelope, { allowExpired: true });
        if (r.version !== e.version) throw new Error(`entry says v${e.version}, the root is v${r.version}`);
        chain.push(r); prev = r;
      } catch (err) { fail(`log[${i}] (root v${e.version})`, err); prev = null; }
    }
  }
  let current: TrustedRoot | null = null;
  for (let i = 0; i < n; i++) {
    const e = entries[i];
    if (e?.kind === 'root') current = chain.find((r) => r.version === e.version) ?? current;
    rootAt[i] = current;
  }
  const hubVerifiers = chain.flatMap(logVerifiers).filter((v, i, all) => all.findIndex((w) => w.name === v.name) === i);

  // 3. Checkpoints: signed by a hub key of the chain, root hash = MTH of the exported leaves.
  let lastCp: { size: number; rootHash: Buffer } | null = null;
  for (const c of data.checkpoints) {
    const where = `checkpoints.jsonl line ${c.line} (size ${c.size})`;
    try {
      if (hubVerifiers.length === 0) throw new Error('no trusted hub key to check it with');
      const cp = verifyCheckpoint(c.checkpoint, hubVerifiers, { origin: LOG_ORIGIN });
      if (cp.size !== c.size) throw Object.assign(new Error(`line says size ${c.size}, the signed checkpoint says ${cp.size}`), { code: 'SIGN_ERR_AUDIT_MISMATCH' });
      checkAgainstTree(tree, cp);
      if (lastCp) {
        if (cp.size < lastCp.size) throw Object.assign(new Error(`size ${cp.size} after size ${lastCp.size}: checkpoints must not go backwards`), { code: 'SIGN_ERR_AUDIT_MISMATCH' });
        if (lastCp.size > 0) verifyConsistency(lastCp.size, cp.size, tree.consistencyProof(lastCp.size, cp.size), lastCp.rootHash, cp.rootHash);
      }
      lastCp = cp;
    } catch (err) { fail(where, err, (err as { code?: string }).code); }
  }
  if (!lastCp || lastCp.size !== n) fail('checkpoints.jsonl', new Error(`the latest valid checkpoint covers ${lastCp?.size ?? 0} of ${n} leaves; leaves beyond a signed checkpoint are not evidence`), 'SIGN_ERR_AUDIT_UNSIGNED_TAIL');
  else for (let i = 0; i < n; i++) {
    try { verifyInclusion(i, n, tree.leafHashAt(i), tree.inclusionProof(i, n), lastCp.rootHash); } catch (err) { fail(`log[${i}]`, err); }
  }
  for (const k of opts.knownCheckpoints ?? []) {
    try {
      const cp = verifyCheckpoint(k.text, hubVerifiers, { origin: LOG_ORIGIN });
      if (cp.size > n) throw Object.assign(new Error(`a checkpoint of size ${cp.size} was seen before, but the log now has ${n} leaves: the log shrank`), { code: 'SIGN_ERR_MERKLE_CONSISTENCY' });
      checkAgainstTree(tree, cp, 'SIGN_ERR_MERKLE_CONSISTENCY');
    } catch (err) { fail(`known checkpoint ${k.name}`, err, (err as { code?: string }).code); }
  }

  // 4. Manifests: bundle id = sha256 of the signed bytes, release threshold of the root in force.
  const manifests = new Map<string, { index: number; name: string; version: number }>();
  entries.forEach((e, i) => {
    if (e?.kind !== 'manifest') return;
    try {
      const env = parseEnvelope(e.envelope);
      const bytes = Buffer.from(env.payload, 'base64');
      const id = createHash('sha256').update(bytes).digest('hex');
      if (id !== e.bundleId) throw Object.assign(new Error(`entry names bundle ${e.bundleId.slice(0, 12)}…, its manifest bytes hash to ${id.slice(0, 12)}…`), { code: 'SIGN_ERR_AUDIT_MISMATCH' });
      const root = rootAt[i];
      if (!root) throw Object.assign(new Error('logged before any root'), { code: 'SIGN_ERR_AUDIT_MISMATCH' });
      verifyEnvelopeWith(env, PAYLOAD_TYPES.manifest, root.roles.release, `manifest ${id.slice(0, 12)}… under root v${root.version}`);
      const m = parse(manifestSchema, JSON.parse(bytes.toString('utf8')), { what: 'manifest' });
      manifests.set(id, { index: i, name: m.name, version: m.version });
    } catch (err) { fail(`log[${i}] (manifest)`, err, (err as { code?: string }).code); }
  });

  // 5. Deployments name logged manifests, logged before them.
  const assignedAt = new Map<string, number>(); // bundleId \0 deviceId → index of the first deployment assigning it
  const approvals: AuditReport['approvals'] = [];
  entries.forEach((e, i) => {
    if (e?.kind === 'deployment') {
      const m = manifests.get(e.bundleId);
      if (!m || m.index > i) fail(`log[${i}] (deployment)`, new Error(`assigns bundle ${e.bundleId.slice(0, 12)}…, which is not a logged signed manifest before it`), 'SIGN_ERR_AUDIT_UNLOGGED');
      else if (m.name !== e.name || m.version !== e.version) fail(`log[${i}] (deployment)`, new Error(`says ${e.name}@${e.version}, the manifest is ${m.name}@${m.version}`), 'SIGN_ERR_AUDIT_MISMATCH');
      for (const d of e.devices) if (!assignedAt.has(`${e.bundleId}\0${d}`)) assignedAt.set(`${e.bundleId}\0${d}`, i);
      approvals.push({ index: i, kind: 'deployment', actor: e.actor, at: e.at, what: `${e.name}@${e.version} to ${e.devices.length} device(s)${e.rolloutId ? ` (rollout ${e.rolloutId}${e.ring ? `, ring ${e.ring}` : ''})` : ''}` });
    } else if (e?.kind === 'rollout-decision' && isRecord(e.record)) {
      const r = e.record;
      approvals.push({ index: i, kind: `rollout ${String(r.kind)}`, actor: String(r.actor ?? '?'), at: Number(r.at ?? 0), what: `${String(r.rolloutId)}${r.ring ? ` ring ${String(r.ring)}` : ''}${r.reason ? `: ${String(r.reason)}` : ''}` });
    }
  });

  // 6. The convenience files must say exactly what the log says.
  const byIndex = (i: number) => data.entries[i]?.data;
  const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const logged = entries.flatMap((e, i) => (e && (e.kind === 'deployment' || e.kind === 'rollout-decision') ? [i] : []));
  const listed = new Set<number>();
  for (const d of data.decisions) {
    const e = byIndex(d.index) ? entries[d.index] : null;
    if (!e || !sameJson(e, d.entry)) fail(`decisions.jsonl line ${d.line}`, new Error(`differs from log[${d.index}]`), 'SIGN_ERR_AUDIT_MISMATCH');
    listed.add(d.index);
  }
  for (const i of logged) if (!listed.has(i)) fail(`decisions.jsonl`, new Error(`log[${i}] (${entries[i]!.kind}) is missing from decisions.jsonl`), 'SIGN_ERR_AUDIT_MISMATCH');
  for (const f of data.manifests) {
    const env = f.value as Envelope;
    const id = isRecord(env) && typeof env.payload === 'string' ? createHash('sha256').update(Buffer.from(env.payload, 'base64')).digest('hex') : '';
    const m = manifests.get(id);
    const e = m ? entries[m.index] as { envelope: Envelope } : null;
    if (!e || !sameJson(e.envelope, env) || !f.file.endsWith(`${id}.json`)) fail(f.file, new Error('this manifest is not the one the log holds under its bundle id'), 'SIGN_ERR_AUDIT_MISMATCH');
  }
  for (const f of data.roots) {
    const env = f.value as Envelope;
    if (!chain.some((r) => sameJson(r.envelope, env) && f.file.endsWith(`root-${r.version}.json`))) fail(f.file, new Error('this root is not one of the verified root versions in the log'), 'SIGN_ERR_AUDIT_MISMATCH');
  }

  // 7. Installs: only what the log's `installs` leaves hold is evidence of which model ran on which device,
  // and when. Each must be of a signed bundle logged before its leaf, assigned to that device by a
  // deployment logged before its leaf. installs.json must list exactly those (a convenience file, like
  // decisions.jsonl), so an install deleted from it or moved in time is caught, and the report's counts
  // come from the log, never from the file.
  const models = new Map<string, { devices: Set<string>; first: number | null; last: number | null }>();
  const fromLog: string[] = [];
  entries.forEach((e, i) => {
    if (e?.kind !== 'installs') return;
    e.installs.forEach((ins, k) => {
      const where = `log[${i}] (installs[${k}], ${ins.deviceId})`;
      const m = manifests.get(ins.bundleId);
      if (!m || m.index > i) { fail(where, new Error(`install of bundle ${ins.bundleId.slice(0, 12)}…, which is not a logged signed manifest before it`), 'SIGN_ERR_AUDIT_UNLOGGED'); return; }
      const d = assignedAt.get(`${ins.bundleId}\0${ins.deviceId}`);
      if (d === undefined || d > i) { fail(where, new Error(`install of ${m.name}@${m.version}, but no deployment logged before it assigned that bundle to this device`), 'SIGN_ERR_AUDIT_UNLOGGED'); return; }
      fromLog.push(installKey({ ...ins, logIndex: i }));
      const s = models.get(ins.bundleId) ?? { devices: new Set<string>(), first: null, last: null };
      s.devices.add(ins.deviceId);
      s.first = s.first === null ? ins.at : Math.min(s.first, ins.at);
      s.last = s.last === null ? ins.at : Math.max(s.last, ins.at);
      models.set(ins.bundleId, s);
    });
  });
  // Compared as multisets: one deleted line is one problem, not every line after it.
  const unmatched = new Map<string, number>();
  for (const k of fromLog) unmatched.set(k, (unmatched.get(k) ?? 0) + 1);
  data.installs.forEach((ins, k) => {
    const key = isRecord(ins) ? installKey(ins) : '';
    const left = unmatched.get(key) ?? 0;
    if (left > 0) { unmatched.set(key, left - 1); return; }
    fail(`installs.json[${k}] (${String(isRecord(ins) ? ins.deviceId : ins)})`, new Error('this install is not in the log as written (added, altered, or moved in time)'), 'SIGN_ERR_AUDIT_MISMATCH');
  });
  for (const [key, left] of unmatched) {
    if (left === 0) continue;
    const ins = JSON.parse(key) as { deviceId: string; logIndex: number };
    fail(`installs.json`, new Error(`log[${ins.logIndex}] holds an install on ${ins.deviceId} that installs.json does not list`), 'SIGN_ERR_AUDIT_MISMATCH');
  }

  // 8. What no signature covers is reported as the devices' claims, never as evidence, and never as a problem.
  const unverified: AuditReport['unverified'] = [
    ...data.claims.claims.map((c) => claimOf(c, 'the hub never assigned this bundle to this device')),
    ...data.claims.pending.map((c) => claimOf(c, 'not yet in a log leaf when exported')),
  ];

  return {
    ok: problems.length === 0,
    problems,
    logSize: n,
    rootVersions: chain.map((r) => r.version),
    checkpoints: data.checkpoints.length,
    models: [...manifests].map(([bundleId, m]) => {
      const s = models.get(bundleId);
      return { name: m.name, version: m.version, bundleId, devices: s?.devices.size ?? 0, firstInstall: s?.first ?? null, lastInstall: s?.last ?? null };
    }),
    approvals,
    unverified,
  };
}

/** The fields of an install that the log covers, in one order, as a comparable string. */
function installKey(i: Record<string, unknown>): string {
  return JSON.stringify({ deviceId: i.deviceId, bundleId: i.bundleId, counter: i.counter, at: i.at, receivedAt: i.receivedAt, seq: i.seq, logIndex: i.logIndex });
}

function claimOf(c: unknown, why: string): AuditReport['unverified'][number] {
  const r = isRecord(c) ? c : {};
  const str = (x: unknown) => (typeof x === 'string' ? x.slice(0, 128) : '?');
  return { deviceId: str(r.deviceId), kind: typeof r.kind === 'string' ? str(r.kind) : 'installed', bundleId: str(r.bundleId), at: typeof r.at === 'number' ? r.at : null, why };
}

function checkAgainstTree(tree: MerkleTree, cp: { size: number; rootHash: Buffer }, code = 'SIGN_ERR_AUDIT_MISMATCH'): void {
  if (cp.size > tree.size) throw Object.assign(new Error(`signed size ${cp.size} is beyond the ${tree.size} exported leaves`), { code });
  if (!tree.root(cp.size).equals(cp.rootHash)) throw Object.assign(new Error(`the signed root hash of size ${cp.size} is not the hash of the first ${cp.size} exported leaves (entries changed, dropped, reordered, or history rewritten)`), { code });
}

/** The human report: models with device counts and times, then approvals. */
export function formatAuditReport(r: AuditReport): string {
  const t = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());
  const lines = [
    `log: ${r.logSize} entries, ${r.checkpoints} checkpoints, root versions ${r.rootVersions.join(', ') || 'none'}`,
    '',
    'model versions that ran (from the log\'s install leaves):',
    ...r.models.map((m) => `  ${m.name}@${m.version} (${m.bundleId.slice(0, 12)}…): ${m.devices} device(s), first ${t(m.firstInstall)}, last ${t(m.lastInstall)}`),
    '',
    'who approved each step:',
    ...r.approvals.map((a) => `  log[${a.index}] ${t(a.at)} ${a.kind} by ${a.actor}: ${a.what}`),
    '',
    `unverified device claims (no signature covers these; not counted above): ${r.unverified.length}`,
    ...r.unverified.slice(0, 50).map((u) => `  ${u.deviceId} ${u.kind} ${u.bundleId.slice(0, 12)}… at ${t(u.at)}: ${u.why}`),
    ...(r.unverified.length > 50 ? [`  … and ${r.unverified.length - 50} more (claims.json)`] : []),
    '',
    r.ok ? 'audit: OK' : `audit: FAILED (${r.problems.length} problem(s))`,
    ...r.problems.map((p) => `  ${p.entry}: ${p.code}: ${p.message}`),
  ];
  return lines.join('\n') + '\n';
}

/** Keep the helper type visible to callers that build reports of their own. */
export type { DeploymentEntry };
