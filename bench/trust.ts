/**
 * Trust costs (issue #6): Ed25519 verification rate with node:crypto (what
 * agents, the hub and the auditor use) against tweetnacl (the pure-JS
 * fallback for browsers), and `fleetcast audit verify` on an export of 10,000
 * deployment decisions (each with its own signed checkpoint, as the hub
 * writes them) against the floor of hashing every leaf once into a root
 * (RFC 9162 2.1.1). Merkle proofs at a million leaves are in bench/merkle.ts.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { openSqlite } from '@fleetcast/hub/db/open-migrated.js';
import { TransparencyLog } from '@fleetcast/hub/translog/translog.js';
import { verifyAudit } from '@fleetcast/signing/audit-verify.js';
import { EXPORT_FORMAT, type ExportData } from '@fleetcast/signing/audit-export-format.js';
import { generateKeyPair, signBytes, verifyBytes, verifyBytesNacl } from '@fleetcast/signing/ed25519.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { leafHash, rootFromLeafHashes } from '@fleetcast/signing/merkle.js';
import { benchDir } from './dirs.js';
import { nowMs, type BenchResult } from './lib.js';

const DECISIONS = 10_000;

function verifyRate(fn: typeof verifyBytes, n: number): number {
  const kp = generateKeyPair();
  const msgs = Array.from({ length: n }, () => randomBytes(200));
  const sigs = msgs.map((m) => signBytes(kp.secretKey, m));
  const t = nowMs();
  for (let i = 0; i < n; i++) if (!fn(kp.publicKey, msgs[i], sigs[i])) throw new Error('a valid signature did not verify');
  return n / ((nowMs() - t) / 1000);
}

export async function benchTrust(): Promise<BenchResult> {
  const nodeRate = verifyRate(verifyBytes, 5_000);
  const naclRate = verifyRate(verifyBytesNacl, 300);

  // A real log in SQLite: root v1, one manifest, 10,000 deployments, a checkpoint after each append.
  const dir = benchDir('fleetcast-bench-trust-');
  const keys = initKeys(join(dir, 'keys'));
  const bundle = await buildBundle({ model: buildMlp({ seed: 3 }), name: 'bench', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'b.fcb') });
  const db = openSqlite(join(dir, 'log.db'));
  const log = new TransparencyLog(db, { hubKey: keys.keys.hub });
  const tAppend = nowMs();
  const rootEnv = JSON.parse((await import('node:fs')).readFileSync(keys.rootPath, 'utf8'));
  log.append({ kind: 'root', version: 1, envelope: rootEnv }, 'v1');
  log.append({ kind: 'manifest', bundleId: bundle.bundleId, envelope: bundle.envelope }, bundle.bundleId);
  for (let i = 0; i < DECISIONS; i++) log.append({ kind: 'deployment', bundleId: bundle.bundleId, name: 'bench', version: 1, devices: [`dev-${i}`], rolloutId: null, ring: null, actor: 'operator:bench', at: i });
  // Every device then reports its install; the hub logs them batched, as hub/events does.
  const installs = Array.from({ length: DECISIONS }, (_, i) => ({ deviceId: `dev-${i}`, bundleId: bundle.bundleId, counter: 1, at: i, receivedAt: i, seq: 1 }));
  const installLeaves: number[] = [];
  for (let i = 0; i < DECISIONS; i += 1_000) installLeaves.push(log.append({ kind: 'installs', at: i, installs: installs.slice(i, i + 1_000) }).index);
  const appendMs = nowMs() - tAppend;
  const leaves = log.leaves(0, log.size);
  const data: ExportData = {
    meta: { format: EXPORT_FORMAT, hub: 'bench', exportedAt: 0, size: log.size },
    entries: leaves.map((l) => ({ index: l.index, data: l.data })),
    checkpoints: log.checkpoints(0, 1_000_000).map((c, i) => ({ size: c.size, checkpoint: c.note, createdAt: c.createdAt, line: i + 1 })),
    roots: [], manifests: [],
    decisions: leaves.slice(2, 2 + DECISIONS).map((l, i) => ({ index: l.index, entry: JSON.parse(l.data.toString('utf8')), line: i + 1 })),
    installs: installs.map((ins, i) => ({ ...ins, logIndex: installLeaves[Math.floor(i / 1_000)] })),
    claims: { claims: [], pending: [] },
  };
  db.close();
  const tVerify = nowMs();
  const report = verifyAudit(data, rootEnv);
  const verifyMs = nowMs() - tVerify;
  if (!report.ok) throw new Error(`the benchmark export did not verify: ${JSON.stringify(report.problems.slice(0, 3))}`);
  const tFloor = nowMs();
  rootFromLeafHashes(leaves.map((l) => leafHash(l.data)));
  const floorMs = nowMs() - tFloor;

  return {
    name: `trust: Ed25519 verify rate; audit verify of ${DECISIONS.toLocaleString('en')} decisions (${data.checkpoints.length.toLocaleString('en')} checkpoints)`,
    ours: { 'verify/s node:crypto': nodeRate, 'audit verify ms': verifyMs, 'log append ms (all)': appendMs },
    baseline: { 'verify/s tweetnacl': naclRate, 'hash leaves to root ms': floorMs },
    ratios: [
      { name: 'node:crypto speed-up (x)', value: nodeRate / naclRate },
      { name: 'audit / hash floor', value: verifyMs / floorMs },
    ],
    notes: ['audit verify checks every checkpoint signature, each checkpoint root against the leaves, consistency between consecutive checkpoints, an inclusion proof per leaf, every deployment and every install'],
  };
}
