/** Root rotation (TUF 5.3): N → N+1 only, cross-signed by old and new root keys, with a cap, expiry at the end only. */
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../signing/ed25519.js';
import { signEnvelope } from '../../signing/envelope.js';
import { loadRootText } from '../../signing/root.js';
import { nextRootPayload, signNextRoot, verifyNextRoot, verifyRootChain } from '../../signing/root-rotation.js';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { readFileSync } from 'node:fs';
import { cleanupTempDirs, makeKeys } from '../helpers/env.js';

afterAll(cleanupTempDirs);

const DAY = 86_400_000;

function setup() {
  const keys = makeKeys();
  const v1 = loadRootText(readFileSync(keys.rootPath, 'utf8'));
  const newRoot = generateKeyPair();
  const p2 = nextRootPayload(v1.payload, { expires: Date.now() + DAY, roles: { root: { replace: [newRoot.publicKey] } } });
  return { keys, v1, newRoot, p2 };
}

describe('root rotation', () => {
  it('accepts root v2 signed by the old and the new root key, and the new root then governs', () => {
    const { keys, v1, newRoot, p2 } = setup();
    const { envelope, root } = signNextRoot(v1, p2, [keys.keys.root, newRoot]);
    expect(root.version).toBe(2);
    expect([...root.roles.root.keys.keys()]).toEqual([newRoot.keyid]);
    expect(verifyNextRoot(v1, envelope).version).toBe(2);
  });

  it('refuses v2 signed only by the new root keys (not cross-signed) and only by the old ones (not self-signed)', () => {
    const { keys, v1, newRoot, p2 } = setup();
    const onlyNew = signEnvelope(PAYLOAD_TYPES.root, Buffer.from(JSON.stringify(p2)), [newRoot]);
    expect(() => verifyNextRoot(v1, onlyNew)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_ROOT_NOT_CROSS_SIGNED' }));
    const onlyOld = signEnvelope(PAYLOAD_TYPES.root, Buffer.from(JSON.stringify(p2)), [keys.keys.root]);
    expect(() => verifyNextRoot(v1, onlyOld)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_UNKNOWN_KEY' }));
  });

  it('takes roots one version at a time: a skipped version and an older root are refused', () => {
    const { keys, v1, newRoot, p2 } = setup();
    const { root: v2, envelope: e2 } = signNextRoot(v1, p2, [keys.keys.root, newRoot]);
    const p3 = nextRootPayload(v2.payload, { expires: Date.now() + DAY });
    const { envelope: e3 } = signNextRoot(v2, p3, [newRoot]);
    expect(() => verifyNextRoot(v1, e3)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_ROOT_VERSION' }));
    expect(() => verifyNextRoot(v2, v1.envelope)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_ROOT_ROLLBACK' }));
    // A chain walks 1 → 2 → 3, skipping what is already held, and stops at the cap.
    expect(verifyRootChain(v1, [v1.envelope, e2, e3]).root.version).toBe(3);
    expect(() => verifyRootChain(v1, [e2, e3], { maxSteps: 1 })).toThrow(expect.objectContaining({ code: 'SIGN_ERR_ROOT_CHAIN_TOO_LONG' }));
    expect(() => verifyRootChain(v1, [e3, e2])).toThrow(expect.objectContaining({ code: 'SIGN_ERR_ROOT_VERSION' }));
  });

  it('checks expiry only of the root it ends on (an expired intermediate is fine, an expired final is not)', () => {
    const { keys, v1, newRoot } = setup();
    const now = Date.now();
    const expiredP2 = nextRootPayload(v1.payload, { expires: now - 1, roles: { root: { replace: [newRoot.publicKey] } } });
    const { root: v2, envelope: e2 } = signNextRoot(v1, expiredP2, [keys.keys.root, newRoot]);
    const { envelope: e3 } = signNextRoot(v2, nextRootPayload(v2.payload, { expires: now + DAY }), [newRoot]);
    expect(verifyRootChain(v1, [e2, e3], { now }).root.version).toBe(3);
    expect(() => verifyRootChain(v1, [e2], { now })).toThrow(expect.objectContaining({ code: 'SIGN_ERR_ROOT_EXPIRED' }));
  });

  it('revoking a release key is a new root without it; a threshold of 2 counts each key once', () => {
    const { keys, v1 } = setup();
    const second = generateKeyPair();
    const { root: v2 } = signNextRoot(v1, nextRootPayload(v1.payload, { expires: Date.now() + DAY, roles: { release: { add: [second.publicKey], threshold: 2 } } }), [keys.keys.root]);
    expect(v2.roles.release.threshold).toBe(2);
    const { root: v3 } = signNextRoot(v2, nextRootPayload(v2.payload, { expires: Date.now() + DAY, roles: { release: { revoke: [keys.keys.release.keyid], threshold: 1 } } }), [keys.keys.root]);
    expect([...v3.roles.release.keys.keys()]).toEqual([second.keyid]);
    expect(() => nextRootPayload(v3.payload, { expires: Date.now() + DAY, roles: { release: { revoke: [second.keyid] } } })).toThrow(expect.objectContaining({ code: 'SIGN_ERR_BAD_ROOT' }));
  });
});

describe('fleetcast keys rotate | revoke (CLI, in-process)', () => {
  it('writes root v2 and v3 into keys/, archives every version, and the archive verifies as a chain', async () => {
    const { runCommand } = await import('../helpers/trust-fixture.js');
    const keysCli = await import('../../cli/commands/keys.js');
    const { join } = await import('node:path');
    const { existsSync } = await import('node:fs');
    const { tempDir } = await import('../helpers/env.js');
    const keys = makeKeys();
    const extra = join(tempDir('fleetcast-keygen-'), 'release-2.key');
    expect((await runCommand(keysCli, ['gen', '--role', 'release', '--out', extra])).status).toBe(0);
    const add = await runCommand(keysCli, ['add', '--keys', keys.dir, '--role', 'release', '--key-file', extra, '--sign', keys.keyPaths.root]);
    expect(add.status).toBe(0);
    expect(add.out).toContain('root v2 (was v1)');
    const revoke = await runCommand(keysCli, ['revoke', '--keys', keys.dir, '--role', 'release', '--keyid', keys.keys.release.keyid, '--sign', keys.keyPaths.root]);
    expect(revoke.status).toBe(0);
    for (const v of [1, 2, 3]) expect(existsSync(join(keys.dir, 'roots', `root-${v}.json`))).toBe(true);
    const v1 = loadRootText(readFileSync(join(keys.dir, 'roots', 'root-1.json'), 'utf8'));
    const chain = [2, 3].map((v) => JSON.parse(readFileSync(join(keys.dir, 'roots', `root-${v}.json`), 'utf8')));
    const r = verifyRootChain(v1, chain).root;
    expect(r.version).toBe(3);
    expect(r.roles.release.keys.has(keys.keys.release.keyid)).toBe(false);
    expect(loadRootText(readFileSync(keys.rootPath, 'utf8')).version).toBe(3);
    // Without a root key signature the CLI refuses with a coded error and writes nothing.
    await expect(runCommand(keysCli, ['rotate', '--keys', keys.dir, '--sign', extra])).rejects.toMatchObject({ code: 'SIGN_ERR_UNKNOWN_KEY' });
    expect(existsSync(join(keys.dir, 'roots', 'root-4.json'))).toBe(false);
  });
});
