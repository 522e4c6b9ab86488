/**
 * The transparency log over the hub's API: every append gets a signed
 * checkpoint; inclusion and consistency proofs from the API verify against
 * those checkpoints with the RFC 9162 verifier; the log survives a restart
 * (SQLite) and keeps extending the same history; bad ranges are coded 400s.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyCheckpoint } from '../../signing/checkpoint.js';
import { LOG_ORIGIN, logVerifiers } from '../../signing/log-keys.js';
import { leafHash, verifyConsistency, verifyInclusion } from '../../signing/merkle.js';
import { loadRootText } from '../../signing/root.js';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';
import { api, makeBundle, startTestHub } from '../helpers/hub-harness.js';

afterAll(cleanupTempDirs);

const b64 = (xs: string[]) => xs.map((x) => Buffer.from(x, 'base64'));

describe('transparency log API', () => {
  it('proves inclusion of every entry and consistency across a restart', async () => {
    const keys = makeKeys();
    const root = loadRootText(readFileSync(keys.rootPath, 'utf8'));
    const dataDir = tempDir('fleetcast-translog-');
    let hub = await startTestHub(keys, { dataDir });
    try {
      for (const v of [1, 2]) expect((await api(hub, 'POST', '/v1/bundles', readFileSync((await makeBundle([keys.keys.release], { version: v, model: { seed: v } })).path))).status).toBe(201);
      const cp1 = (await api<{ size: number; checkpoint: string }>(hub, 'GET', '/v1/log/checkpoint')).body;
      expect(cp1.size).toBe(3); // root v1 + two manifests
      const c1 = verifyCheckpoint(cp1.checkpoint, logVerifiers(root), { origin: LOG_ORIGIN });
      const entries = (await api<{ entries: { index: number; data: string }[] }>(hub, 'GET', '/v1/log/entries?start=0&end=3')).body.entries;
      for (const e of entries) {
        const p = (await api<{ leafHash: string; proof: string[] }>(hub, 'GET', `/v1/log/proof/inclusion?index=${e.index}&size=3`)).body;
        expect(Buffer.from(p.leafHash, 'base64').equals(leafHash(Buffer.from(e.data, 'base64')))).toBe(true);
        verifyInclusion(e.index, 3, leafHash(Buffer.from(e.data, 'base64')), b64(p.proof), c1.rootHash);
      }
      // Restart on the same data: the log resumes at its size and keeps extending the same history.
      const mqttPort = hub.broker!.port;
      await hub.close();
      hub = await startTestHub(keys, { dataDir, mqttPort });
      expect((await api(hub, 'POST', '/v1/bundles', readFileSync((await makeBundle([keys.keys.release], { version: 3, model: { seed: 3 } })).path))).status).toBe(201);
      const cp2 = verifyCheckpoint((await api<{ checkpoint: string }>(hub, 'GET', '/v1/log/checkpoint')).body.checkpoint, logVerifiers(root), { origin: LOG_ORIGIN });
      expect(cp2.size).toBe(4);
      const cons = (await api<{ proof: string[] }>(hub, 'GET', `/v1/log/proof/consistency?from=3&to=4`)).body;
      verifyConsistency(3, 4, b64(cons.proof), c1.rootHash, cp2.rootHash);
      expect((await api<{ checkpoints: unknown[] }>(hub, 'GET', '/v1/log/checkpoints?from=0')).body.checkpoints).toHaveLength(4);
      // Bad ranges are coded client errors, and the hub keeps serving.
      expect((await api(hub, 'GET', '/v1/log/proof/inclusion?index=9&size=4')).body).toMatchObject({ error: { code: 'SIGN_ERR_MERKLE_RANGE' } });
      expect((await api(hub, 'GET', '/v1/log/proof/consistency?from=5&to=4')).body).toMatchObject({ error: { code: 'SIGN_ERR_MERKLE_RANGE' } });
      expect((await api(hub, 'GET', '/v1/log/entries?start=x&end=1')).status).toBe(400);
      expect((await api(hub, 'GET', '/v1/log/checkpoint')).status).toBe(200);
    } finally { await hub.close(); }
  });
});
