/**
 * The transparency log is an explicit dependency of what appends to it (hub/translog/hooks.ts): the
 * assigner and bundle ingest refuse to be used without one, instead of silently logging nothing, and a
 * deployment made through an assigner is in its log before any assignment exists.
 */
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { Assigner, type AssignerOptions } from '../../hub/assignments.js';
import { ingestBundleFile } from '../../hub/ingest.js';
import { HubStore } from '../../hub/store.js';
import { TransparencyLog } from '../../hub/translog/translog.js';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { encode } from '../../protocol/messages.js';
import { decodeEntry } from '../../signing/log-entry.js';
import { generateKeyPair } from '../../signing/ed25519.js';
import { signEnvelope } from '../../signing/envelope.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { manifestFor, randomPayload, silentLogger } from '../helpers/hub-fixtures.js';

afterAll(cleanupTempDirs);

const release = generateKeyPair();
const hubKey = { ...generateKeyPair(), role: 'hub' as const };

describe('the transparency log is passed to what appends to it', () => {
  it('Assigner_without_log_refuses_to_start: building an assigner with no log throws; with one, a deployment is logged before it is signed', async () => {
    const store = HubStore.open(tempDir());
    const base = { store, hubKey: hubKey as never, rootVersion: 1, ttlMs: 60_000, publishTimeoutMs: 10_000, now: () => 1_000, logger: silentLogger(), publish: async () => {} };
    expect(() => new Assigner(base as unknown as AssignerOptions)).toThrow(/transparency log/);

    const log = new TransparencyLog(store.db, { hubKey: hubKey as never });
    const manifest = manifestFor(randomPayload(2048), 1024, 'logged', 1);
    const bytes = encode(manifest);
    const id = createHash('sha256').update(bytes).digest('hex');
    store.insertBundle({ id, manifest, envelope: signEnvelope(PAYLOAD_TYPES.manifest, bytes, [release]), createdAt: 1 });
    let logSizeAtFirstSign = -1;
    const assigner = new Assigner({ ...base, log, publish: async () => { if (logSizeAtFirstSign < 0) logSizeAtFirstSign = log.size; } });
    await assigner.assign(store.getBundle(id)!, ['d1', 'd2']);
    const deployments = log.leavesOfKind('deployment').map((l) => decodeEntry(l.data, 'leaf'));
    expect(deployments).toEqual([expect.objectContaining({ kind: 'deployment', bundleId: id, devices: ['d1', 'd2'] })]);
    expect(logSizeAtFirstSign).toBe(log.size);
    store.close();
  });

  it('Ingest_without_log_refuses: accepting a bundle with no log to append its manifest to throws before reading the file', async () => {
    const store = HubStore.open(tempDir());
    await expect(ingestBundleFile('/nonexistent.fcb', { store, root: {} as never, now: Date.now } as never)).rejects.toThrow(/transparency log/);
    store.close();
  });
});
