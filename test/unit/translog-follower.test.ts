/**
 * The transparency log on a hub of a cluster: hubs share one database, and a
 * hub that did not make the latest appends (a follower, or a new leader that
 * has not appended yet) serves the log as committed, not as its own tree in
 * memory last saw it. Real SQLite file; the leadership check (fence) is the
 * unit seam (on PostgreSQL the cluster tests run the real one).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { HubStore } from '../../hub/store.js';
import { TransparencyLog } from '../../hub/translog/translog.js';
import { generateKeyPair } from '../../signing/ed25519.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';

afterAll(cleanupTempDirs);

const hubKey = { ...generateKeyPair(), role: 'hub' as const };
const installs = (n: number) => ({ kind: 'installs' as const, at: n, installs: [{ deviceId: `d${n}`, bundleId: 'b'.repeat(64), counter: n, at: n, receivedAt: n, seq: n }] });

describe('transparency log read by a hub that did not append', () => {
  it('Follower_reads_the_committed_log: size, leaves, root and proofs follow what another hub appended', () => {
    const store = HubStore.open(tempDir());
    store.fence = () => {};
    const now = () => 1_000_000;
    const follower = new TransparencyLog(store.db, { hubKey: hubKey as never, now, fence: store.fence });
    const leader = new TransparencyLog(store.db, { hubKey: hubKey as never, now, fence: store.fence });
    for (let i = 1; i <= 5; i++) leader.append(installs(i));
    // Before: the follower's tree stayed at the size it opened with (0), so /v1/log/entries, capped by it, gave no
    // leaves for a checkpoint of 5, and proofs to size 5 were refused.
    expect(follower.latest()!.size).toBe(5);
    expect(follower.size).toBe(5);
    expect(follower.leaves(0, follower.size).map((l) => l.index)).toEqual([0, 1, 2, 3, 4]);
    expect(follower.root().equals(leader.root())).toBe(true);
    expect(follower.consistencyProof(2)).toEqual(leader.consistencyProof(2, 5));
    expect(follower.inclusionProof(3)).toEqual(leader.inclusionProof(3, 5));
    // And the follower's own append after taking over extends the same tree.
    follower.append(installs(6));
    expect(leader.size).toBe(6);
    expect(leader.root().equals(follower.root())).toBe(true);
    store.close();
  });
});
