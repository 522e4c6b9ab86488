/**
 * The transparency log read by a hub that did not append, on PostgreSQL: two hubs' stores on one database, each its
 * own connection (as two hub processes have), so a leaf row, its subtree hashes and its checkpoint are seen by the
 * other hub only once the appending transaction commits. Sizes come back as numbers (BIGINT parsed), and the
 * follower's tree, re-opened at the committed size, finds every hash it needs in the shared store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubStore } from '../../hub/store.js';
import { TransparencyLog } from '../../hub/translog/translog.js';
import { generateKeyPair } from '../../signing/ed25519.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { hasPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';

const hubKey = { ...generateKeyPair(), role: 'hub' as const };
const installs = (n: number) => ({ kind: 'installs' as const, at: n, installs: [{ deviceId: `d${n}`, bundleId: 'b'.repeat(64), counter: n, at: n, receivedAt: n, seq: n }] });

describe.skipIf(!hasPostgres)('transparency log of a cluster on PostgreSQL', () => {
  let server: TestPostgres;
  beforeAll(async () => { server = await startPostgres(); }, 120_000);
  afterAll(async () => { await server?.close(); cleanupTempDirs(); });

  it('Follower_reads_the_committed_log_on_postgres: a follower sees leaves, root and proofs once they commit, not before', async () => {
    const url = await server.newDatabase();
    const a = HubStore.open(tempDir(), { url });
    const b = HubStore.open(tempDir(), { url });
    try {
      a.fence = () => {};
      b.fence = () => {};
      const now = () => 1_000_000;
      const leader = new TransparencyLog(a.db, { hubKey: hubKey as never, now, fence: a.fence });
      const follower = new TransparencyLog(b.db, { hubKey: hubKey as never, now, fence: b.fence });
      for (let i = 1; i <= 5; i++) leader.append(installs(i));
      expect(follower.size).toBe(5);
      expect(typeof follower.size).toBe('number');
      expect(follower.root().equals(leader.root())).toBe(true);
      expect(follower.consistencyProof(3)).toEqual(leader.consistencyProof(3, 5));
      expect(follower.inclusionProof(4)).toEqual(leader.inclusionProof(4, 5));
      // A leaf being appended, not yet committed, is not part of the follower's log (nor are its hashes needed).
      a.db.transaction(() => {
        leader.append(installs(6));
        expect(follower.size).toBe(5);
        expect(follower.root(5).equals(leader.root(5))).toBe(true);
      })();
      expect(follower.size).toBe(6);
      expect(follower.root().equals(leader.root())).toBe(true);
      expect(follower.consistencyProof(5)).toEqual(leader.consistencyProof(5, 6));
    } finally {
      a.close();
      b.close();
    }
  }, 60_000);
});
