/**
 * The auditor against a real hub: export the transparency log from a hub whose
 * agents really installed a bundle, verify it offline (clean report naming the
 * model version, its devices and who approved it), then alter the export in
 * many ways; each alteration fails the audit and names the entry.
 */
import { openMigrated } from '../../hub/db/open-migrated.js';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as auditCli from '../../cli/commands/audit.js';
import { exportAudit } from '../../cli/audit-export.js';
import { readExport } from '../../signing/audit-export-format.js';
import { verifyAudit } from '../../signing/audit-verify.js';
import { encodeEntry, decodeEntry } from '../../signing/log-entry.js';
import { TransparencyLog } from '../../hub/translog/translog.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { adminToken, api, startTestHub } from '../helpers/hub-harness.js';
import { copyDir, deployedFleet, runCommand } from '../helpers/trust-fixture.js';

let fleet: Awaited<ReturnType<typeof deployedFleet>>;
let clean: string;
let root: unknown;

beforeAll(async () => {
  fleet = await deployedFleet(['dev-a', 'dev-b']);
  // Installs reach the hub as events; wait until both are recorded.
  await waitFor(async () => (await api<{ installs: unknown[] }>(fleet.hub, 'GET', '/v1/log/installs')).body.installs.length === 2, 'installs recorded');
  clean = tempDir('fleetcast-audit-');
  await exportAudit(fleet.hub.httpUrl, clean, { token: fleet.token });
  root = JSON.parse(readFileSync(fleet.keys.rootPath, 'utf8'));
}, 60_000);

afterAll(async () => { await fleet?.close(); cleanupTempDirs(); });

const lines = (f: string) => readFileSync(f, 'utf8').split('\n').filter(Boolean);
const writeLines = (f: string, ls: string[]) => writeFileSync(f, ls.join('\n') + '\n');

function audit(dir: string) {
  return verifyAudit(readExport(dir), root);
}

function expectCaught(dir: string, code: string, entry: RegExp) {
  const r = audit(dir);
  expect(r.ok).toBe(false);
  expect(r.problems).toEqual(expect.arrayContaining([expect.objectContaining({ code, entry: expect.stringMatching(entry) })]));
}

describe('audit export + verify', () => {
  it('a clean export verifies: root, manifest, deployment, checkpoints, and installs on both devices', async () => {
    const r = audit(clean);
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.rootVersions).toEqual([1]);
    // Leaves: root v1, the manifest, the deployment, then the installs (one leaf, or one per batch).
    const kinds = lines(join(clean, 'entries.jsonl')).map((l) => decodeEntry(Buffer.from(JSON.parse(l).data, 'base64')).kind);
    expect(kinds.slice(0, 3)).toEqual(['root', 'manifest', 'deployment']);
    expect(new Set(kinds.slice(3))).toEqual(new Set(['installs']));
    expect(r.logSize).toBe(kinds.length);
    expect(r.unverified).toEqual([]);
    expect(r.models).toEqual([expect.objectContaining({ name: 'churn', version: 1, bundleId: fleet.bundle.bundleId, devices: 2 })]);
    expect(r.approvals).toEqual([expect.objectContaining({ kind: 'deployment', actor: expect.stringMatching(/^admin:tok-/), what: 'churn@1 to 2 device(s)' })]);
    // The CLI prints the report and exits 0.
    const cli = await runCommand(auditCli, ['verify', clean, '--root', fleet.keys.rootPath]);
    expect(cli.status).toBe(0);
    expect(cli.out).toContain('churn@1');
    expect(cli.out).toContain('2 device(s)');
    expect(cli.out).toContain('audit: OK');
  });

  it('a decision dropped from decisions.jsonl is caught', () => {
    const d = copyDir(clean);
    writeFileSync(join(d, 'decisions.jsonl'), '');
    expectCaught(d, 'SIGN_ERR_AUDIT_MISMATCH', /decisions\.jsonl/);
  });

  it('a decision dropped from the log itself is caught by the signed checkpoint', () => {
    const d = copyDir(clean);
    const ls = lines(join(d, 'entries.jsonl'));
    writeLines(join(d, 'entries.jsonl'), ls.slice(0, 2));
    expectCaught(d, 'SIGN_ERR_AUDIT_MISMATCH', /checkpoints\.jsonl/);
  });

  it('an edited manifest file is caught', () => {
    const d = copyDir(clean);
    const f = join(d, 'manifests', `${fleet.bundle.bundleId}.json`);
    const env = JSON.parse(readFileSync(f, 'utf8'));
    env.signatures[0].sig = Buffer.alloc(64, 1).toString('base64');
    writeFileSync(f, JSON.stringify(env));
    expectCaught(d, 'SIGN_ERR_AUDIT_MISMATCH', /manifests/);
  });

  it('an edited manifest leaf (re-encoded with other bytes) is caught', () => {
    const d = copyDir(clean);
    const ls = lines(join(d, 'entries.jsonl'));
    const leaf = JSON.parse(ls[1]);
    const entry = decodeEntry(Buffer.from(leaf.data, 'base64')) as { kind: 'manifest'; envelope: { payload: string } };
    const payload = JSON.parse(Buffer.from(entry.envelope.payload, 'base64').toString());
    payload.version = 9;
    entry.envelope.payload = Buffer.from(JSON.stringify(payload)).toString('base64');
    ls[1] = JSON.stringify({ index: 1, data: encodeEntry(entry as never).toString('base64') });
    writeLines(join(d, 'entries.jsonl'), ls);
    expectCaught(d, 'SIGN_ERR_AUDIT_MISMATCH', /checkpoints\.jsonl/);
  });

  it('two swapped leaves are caught', () => {
    const d = copyDir(clean);
    const ls = lines(join(d, 'entries.jsonl')).map((l) => JSON.parse(l));
    [ls[1].data, ls[2].data] = [ls[2].data, ls[1].data];
    writeLines(join(d, 'entries.jsonl'), ls.map((l) => JSON.stringify(l)));
    expectCaught(d, 'SIGN_ERR_AUDIT_MISMATCH', /checkpoints\.jsonl/);
  });

  it('a checkpoint spliced in from another log signed by the same hub key is caught', async () => {
    const other = await startTestHub(fleet.keys);
    try {
      const o = tempDir('fleetcast-audit-other-');
      await exportAudit(other.httpUrl, o, { token: adminToken(other) });
      const d = copyDir(clean);
      // The other log's size-1 checkpoint is validly signed but commits to a different root leaf set? Same root leaf:
      // so splice its checkpoint under a size where the logs differ: re-label its only checkpoint as the newest.
      const foreign = JSON.parse(lines(join(o, 'checkpoints.jsonl')).at(-1)!);
      const ls = lines(join(d, 'checkpoints.jsonl'));
      const newest = JSON.parse(ls.at(-1)!);
      // Sign-valid, but for size 1 while the line claims the newest size.
      ls[ls.length - 1] = JSON.stringify({ ...newest, checkpoint: foreign.checkpoint });
      writeLines(join(d, 'checkpoints.jsonl'), ls);
      expectCaught(d, 'SIGN_ERR_AUDIT_MISMATCH', /checkpoints\.jsonl/);
    } finally { await other.close(); }
  });

  it('a changed checkpoint signature is caught', () => {
    const d = copyDir(clean);
    const ls = lines(join(d, 'checkpoints.jsonl'));
    const c = JSON.parse(ls.at(-1)!);
    const [body, sigLine] = [c.checkpoint.slice(0, c.checkpoint.lastIndexOf('\u2014')), c.checkpoint.slice(c.checkpoint.lastIndexOf('\u2014'))];
    const [, name, b64] = /^\u2014 (\S+) (\S+)\n$/u.exec(sigLine)!;
    const raw = Buffer.from(b64, 'base64'); raw[10] ^= 1;
    ls[ls.length - 1] = JSON.stringify({ ...c, checkpoint: `${body}\u2014 ${name} ${raw.toString('base64')}\n` });
    writeLines(join(d, 'checkpoints.jsonl'), ls);
    expectCaught(d, 'SIGN_ERR_CHECKPOINT_SIGNATURE', /checkpoints\.jsonl/);
  });

  it('a log with no checkpoint over its last leaf is caught', () => {
    const d = copyDir(clean);
    writeLines(join(d, 'checkpoints.jsonl'), lines(join(d, 'checkpoints.jsonl')).slice(0, -1));
    expectCaught(d, 'SIGN_ERR_AUDIT_UNSIGNED_TAIL', /checkpoints\.jsonl/);
  });

  it('an install added to installs.json that the log does not hold is caught, and the CLI exits 1 naming it', async () => {
    const d = copyDir(clean);
    const inst = JSON.parse(readFileSync(join(d, 'installs.json'), 'utf8'));
    inst.installs.push({ ...inst.installs[0], deviceId: 'dev-intruder' });
    writeFileSync(join(d, 'installs.json'), JSON.stringify(inst));
    expectCaught(d, 'SIGN_ERR_AUDIT_MISMATCH', /installs\.json\[2\] \(dev-intruder\)/);
    const cli = await runCommand(auditCli, ['verify', d, '--root', fleet.keys.rootPath]);
    expect(cli.status).toBe(1);
    expect(cli.out).toMatch(/dev-intruder.*SIGN_ERR_AUDIT_MISMATCH/);
  });

  // The install history is tamper-evident: installs.json is checked against the log's install leaves, and
  // the report counts devices from the leaves, so an edit to the file can neither pass nor change the counts.
  it('tamper_install_deleted: one device\'s install deleted from installs.json is caught; the report still counts 2 devices', () => {
    const d = copyDir(clean);
    const inst = JSON.parse(readFileSync(join(d, 'installs.json'), 'utf8'));
    const gone = inst.installs.splice(1, 1)[0];
    writeFileSync(join(d, 'installs.json'), JSON.stringify(inst));
    expectCaught(d, 'SIGN_ERR_AUDIT_MISMATCH', /installs\.json/);
    const r = audit(d);
    expect(r.problems.map((p) => p.message).join('\n')).toContain(gone.deviceId);
    expect(r.models).toEqual([expect.objectContaining({ bundleId: fleet.bundle.bundleId, devices: 2 })]);
  });

  it('tamper_install_time_moved: an install moved by an hour in installs.json is caught; the report keeps the logged time', () => {
    const before = audit(clean).models[0];
    const d = copyDir(clean);
    const inst = JSON.parse(readFileSync(join(d, 'installs.json'), 'utf8'));
    inst.installs[0].at -= 3_600_000;
    writeFileSync(join(d, 'installs.json'), JSON.stringify(inst));
    expectCaught(d, 'SIGN_ERR_AUDIT_MISMATCH', /installs\.json\[0\]/);
    expect(audit(d).models[0]).toEqual(before);
  });

  it('tamper_install_leaf_edited: an install leaf edited in the log itself is caught by the signed checkpoint', () => {
    const d = copyDir(clean);
    const ls = lines(join(d, 'entries.jsonl'));
    const k = ls.findIndex((l) => decodeEntry(Buffer.from(JSON.parse(l).data, 'base64')).kind === 'installs');
    const entry = decodeEntry(Buffer.from(JSON.parse(ls[k]).data, 'base64')) as { kind: 'installs'; installs: { at: number }[] };
    entry.installs[0].at -= 3_600_000;
    ls[k] = JSON.stringify({ index: k, data: encodeEntry(entry as never).toString('base64') });
    writeLines(join(d, 'entries.jsonl'), ls);
    expectCaught(d, 'SIGN_ERR_AUDIT_MISMATCH', /checkpoints\.jsonl/);
  });

  it('an install leaf the hub signed for a device no logged deployment assigned is caught (the hub is not trusted either)', () => {
    // A hub key that logs whatever it likes: the same leaves, then an install on a device never assigned.
    const db = openMigrated(':memory:');
    const log = new TransparencyLog(db, { hubKey: fleet.keys.keys.hub });
    const kept = lines(join(clean, 'entries.jsonl')).map((l) => decodeEntry(Buffer.from(JSON.parse(l).data, 'base64')));
    for (const e of kept) log.append(e);
    const forged = log.append({ kind: 'installs', at: 1, installs: [{ deviceId: 'dev-ghost', bundleId: fleet.bundle.bundleId, counter: 1, at: 1, receivedAt: 1, seq: 1 }] });
    const data = readExport(clean);
    data.entries = log.leaves(0, log.size);
    data.checkpoints = log.checkpoints(0).map((c, i) => ({ size: c.size, checkpoint: c.note, createdAt: c.createdAt, line: i + 1 }));
    data.installs = [...data.installs.map((i) => ({ ...i, logIndex: i.logIndex })), { deviceId: 'dev-ghost', bundleId: fleet.bundle.bundleId, counter: 1, at: 1, receivedAt: 1, seq: 1, logIndex: forged.index }];
    const r = verifyAudit(data, root);
    db.close();
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([expect.objectContaining({ code: 'SIGN_ERR_AUDIT_UNLOGGED', entry: `log[${forged.index}] (installs[0], dev-ghost)` }), expect.objectContaining({ code: 'SIGN_ERR_AUDIT_MISMATCH', entry: expect.stringMatching(/dev-ghost/) })]);
    expect(r.models).toEqual([expect.objectContaining({ devices: 2 })]);
  });

  it('claims.json is listed as unverified device claims and can neither fail the audit nor add installs', () => {
    const d = copyDir(clean);
    const inst = JSON.parse(readFileSync(join(d, 'installs.json'), 'utf8'));
    writeFileSync(join(d, 'claims.json'), JSON.stringify({ claims: [{ ...inst.installs[0], deviceId: 'dev-claimer', kind: 'installed' }], pending: [{ ...inst.installs[0], deviceId: 'dev-late' }] }));
    const r = audit(d);
    expect(r.ok).toBe(true);
    expect(r.models).toEqual([expect.objectContaining({ devices: 2 })]);
    expect(r.unverified.map((u) => u.deviceId)).toEqual(['dev-claimer', 'dev-late']);
  });

  it('a root file that is not in the log, and a missing file, are caught', () => {
    const d = copyDir(clean);
    writeFileSync(join(d, 'roots', 'root-1.json'), JSON.stringify({ payloadType: 'x', payload: '', signatures: [] }));
    expectCaught(d, 'SIGN_ERR_AUDIT_MISMATCH', /root-1\.json/);
    rmSync(join(d, 'installs.json'));
    expect(() => readExport(d)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_AUDIT_EXPORT' }));
  });
});
