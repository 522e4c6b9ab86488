/**
 * The simulator's shared checkpoint verification (simulator/shared-checkpoints.ts)
 * must refuse whatever a device's own check refuses, while verifying the same
 * checkpoint against the same root once for a whole fleet.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyLogCheckpoint } from '../../agent/trust.js';
import { errorCode } from '../../protocol/errors.js';
import { signCheckpoint } from '../../signing/checkpoint.js';
import { LOG_ORIGIN, logSigner } from '../../signing/log-keys.js';
import { MerkleTree } from '../../signing/merkle.js';
import { loadRootText } from '../../signing/root.js';
import { sharedCheckpointVerify } from '../../simulator/shared-checkpoints.js';
import { cleanupTempDirs, makeKeys } from '../helpers/env.js';

afterAll(cleanupTempDirs);

const refusal = (f: () => unknown) => { try { f(); return 'accepted'; } catch (e) { return errorCode(e); } };

describe('shared checkpoint verification (simulator)', () => {
  it('Shared_checkpoint_verified_once_per_root_and_forgeries_refused_by_every_device', () => {
    const keys = makeKeys();
    const other = makeKeys();
    const root = loadRootText(readFileSync(join(keys.dir, 'root.json'), 'utf8'));
    const otherRoot = loadRootText(readFileSync(join(other.dir, 'root.json'), 'utf8'));
    const tree = new MerkleTree();
    for (let i = 0; i < 5; i++) tree.appendData(Buffer.from(`entry ${i}`));
    const text = signCheckpoint({ origin: LOG_ORIGIN, size: tree.size, rootHash: tree.root() }, logSigner(keys.keys.hub));
    const verify = sharedCheckpointVerify();

    const first = verify(text, root);
    expect(first.size).toBe(5);
    expect(first.rootHash.equals(tree.root())).toBe(true);
    // Another agent, the same note text and root: the one verified result, shared.
    expect(verify(`${text}`, root)).toBe(first);

    // The size changed under the good signature: refused as the device refuses it, although the original is cached.
    const grown = text.replace(/\n5\n/, '\n6\n');
    expect(grown).not.toBe(text);
    expect(refusal(() => verify(grown, root))).toBe(refusal(() => verifyLogCheckpoint(grown, root)));
    expect(refusal(() => verify(grown, root))).not.toBe('accepted');
    // Signed by a hub key this root does not list: refused, by every device, every time.
    const forged = signCheckpoint({ origin: LOG_ORIGIN, size: tree.size, rootHash: tree.root() }, logSigner(other.keys.hub));
    for (let i = 0; i < 2; i++) expect(refusal(() => verify(forged, root))).toBe(refusal(() => verifyLogCheckpoint(forged, root)));
    expect(refusal(() => verify(forged, root))).not.toBe('accepted');
    // The good checkpoint against a root that does not list its key: refused, cached success or not.
    expect(refusal(() => verify(text, otherRoot))).not.toBe('accepted');
  });
});
