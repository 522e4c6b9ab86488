/**
 * Checkpoints (c2sp.org/tlog-checkpoint) signed over a real MerkleTree root:
 * round trip, every kind of tampering, strict parsing, and fuzzed mutations that
 * must all end in coded errors.
 */
import { createPublicKey, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseCheckpoint, signCheckpoint, verifyCheckpoint } from '../../signing/checkpoint.js';
import { generateKeyPair } from '../../signing/ed25519.js';
import { MerkleTree } from '../../signing/merkle.js';

const ORIGIN = 'fleetcast.example/log';
const tree = new MerkleTree();
for (let i = 0; i < 21; i++) tree.appendData(Buffer.from(`decision ${i}`));
const cp = { origin: ORIGIN, size: tree.size, rootHash: tree.root() };
const hub = { name: ORIGIN, keyPair: generateKeyPair() };
const trusted = [{ name: ORIGIN, publicKey: hub.keyPair.publicKey }];
const signed = signCheckpoint(cp, hub);
const [body, sigLine] = signed.split('\n\n');

const code = (fn: () => unknown): string => {
  try { fn(); return 'accepted'; } catch (e) { return (e as { code: string }).code; }
};

describe('checkpoint round trip', () => {
  it('writes origin, size and base64 root, a blank line and one em-dash signature line, and verifies', () => {
    expect(body).toBe(`${ORIGIN}\n21\n${tree.root().toString('base64')}`);
    expect(sigLine).toMatch(new RegExp(`^\u2014 ${ORIGIN} [A-Za-z0-9+/]{91}=\\n$`));
    // The signature is Ed25519 over the body text, checked here with node:crypto directly (after the 4-byte key hash).
    const sig = Buffer.from(sigLine.split(' ')[2], 'base64');
    expect(sig).toHaveLength(68);
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(hub.keyPair.publicKey)]);
    expect(verify(null, Buffer.from(`${body}\n`), createPublicKey({ key: spki, format: 'der', type: 'spki' }), sig.subarray(4))).toBe(true);
    const got = verifyCheckpoint(signed, trusted, { origin: ORIGIN });
    expect(got.origin).toBe(ORIGIN);
    expect(got.size).toBe(21);
    expect(got.rootHash.equals(tree.root())).toBe(true);
    expect(got.signedBy).toEqual([ORIGIN]);
    expect(parseCheckpoint(signed)).toMatchObject({ origin: ORIGIN, size: 21, signatures: [{ name: ORIGIN }] });
  });

  it('handles the empty log and a large size', () => {
    const empty = signCheckpoint({ origin: ORIGIN, size: 0, rootHash: new MerkleTree().root() }, hub);
    expect(verifyCheckpoint(empty, trusted).size).toBe(0);
    expect(verifyCheckpoint(signCheckpoint({ ...cp, size: 2 ** 53 - 1 }, hub), trusted).size).toBe(2 ** 53 - 1);
  });
});

describe('tampering', () => {
  const other = generateKeyPair();
  const replaceBody = (from: string, to: string) => `${body.replace(from, to)}\n\n${sigLine}`;
  const sigBytes = Buffer.from(sigLine.slice(2 + ORIGIN.length + 1, -1), 'base64');
  const withSig = (b: Buffer) => `${body}\n\n\u2014 ${ORIGIN} ${b.toString('base64')}\n`;
  const flip = (i: number) => { const b = Buffer.from(sigBytes); b[i] ^= 0x01; return b; };

  it.each([
    ['the size', () => verifyCheckpoint(replaceBody('\n21\n', '\n22\n'), trusted), 'SIGN_ERR_CHECKPOINT_SIGNATURE'],
    ['the root hash', () => verifyCheckpoint(replaceBody(tree.root().toString('base64'), tree.root(20).toString('base64')), trusted), 'SIGN_ERR_CHECKPOINT_SIGNATURE'],
    ['the origin', () => verifyCheckpoint(replaceBody(ORIGIN, 'fleetcast.example/other'), trusted), 'SIGN_ERR_CHECKPOINT_SIGNATURE'],
    ['a signature byte', () => verifyCheckpoint(withSig(flip(40)), trusted), 'SIGN_ERR_CHECKPOINT_SIGNATURE'],
    ['the last signature byte', () => verifyCheckpoint(withSig(flip(67)), trusted), 'SIGN_ERR_CHECKPOINT_SIGNATURE'],
    ['a truncated signature', () => verifyCheckpoint(withSig(sigBytes.subarray(0, 67)), trusted), 'SIGN_ERR_CHECKPOINT_SIGNATURE'],
    ['a key hash byte', () => verifyCheckpoint(withSig(flip(0)), trusted), 'SIGN_ERR_CHECKPOINT_UNTRUSTED'],
    ['a wrong key under the right name', () => verifyCheckpoint(signed, [{ name: ORIGIN, publicKey: other.publicKey }]), 'SIGN_ERR_CHECKPOINT_UNTRUSTED'],
    ['an unknown key name', () => verifyCheckpoint(signCheckpoint(cp, { name: 'mallory', keyPair: other }), trusted), 'SIGN_ERR_CHECKPOINT_UNTRUSTED'],
    ['the right key under another name', () => verifyCheckpoint(signCheckpoint(cp, { name: 'renamed', keyPair: hub.keyPair }), trusted), 'SIGN_ERR_CHECKPOINT_UNTRUSTED'],
    ['a checkpoint from another log', () => verifyCheckpoint(signCheckpoint({ ...cp, origin: 'other.example/log' }, hub), trusted, { origin: ORIGIN }), 'SIGN_ERR_CHECKPOINT_ORIGIN'],
  ])('is caught: %s', (_what, fn, want) => {
    expect(code(fn)).toBe(want);
  });

  it('duplicate signature lines count once; a forged line beside a good one still rejects the note', () => {
    const witness = { name: 'witness.example', keyPair: generateKeyPair() };
    const two = [...trusted, { name: witness.name, publicKey: witness.keyPair.publicKey }];
    const dup = `${signed}${sigLine}`;
    expect(verifyCheckpoint(dup, trusted).signedBy).toEqual([ORIGIN]);
    expect(code(() => verifyCheckpoint(dup, two, { threshold: 2 }))).toBe('SIGN_ERR_CHECKPOINT_UNTRUSTED');
    expect(verifyCheckpoint(signCheckpoint(cp, [hub, witness]), two, { threshold: 2 }).signedBy).toEqual([ORIGIN, witness.name]);
    expect(code(() => verifyCheckpoint(`${signed}\u2014 ${ORIGIN} ${flip(9).toString('base64')}\n`, trusted))).toBe('SIGN_ERR_CHECKPOINT_SIGNATURE');
    // A cosignature from a key this verifier does not know is ignored (signed-note).
    expect(verifyCheckpoint(signCheckpoint(cp, [hub, { name: 'unknown.example', keyPair: other }]), trusted).signedBy).toEqual([ORIGIN]);
  });
});

describe('strict parsing', () => {
  const root = tree.root().toString('base64');
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const last = alphabet.indexOf(root[42]);
  // Same 32 bytes, but unused low bits set: lenient decoders accept it, we must not.
  const sloppy = `${root.slice(0, 42)}${alphabet[last ^ 1]}=`;
  const note = (b: string) => `${b}\n${sigLine}`;

  it('the sloppy base64 really decodes to the same bytes', () => {
    expect(Buffer.from(sloppy, 'base64').equals(tree.root())).toBe(true);
  });

  it.each([
    ['a missing trailing newline', signed.slice(0, -1)],
    ['an extension line in the body', note(`${ORIGIN}\n21\n${root}\nextension\n`)],
    ['a missing root line', note(`${ORIGIN}\n21\n`)],
    ['a blank line inside the body', note(`${ORIGIN}\n\n21\n${root}\n`)],
    ['a leading zero in the size', note(`${ORIGIN}\n021\n${root}\n`)],
    ['a plus sign in the size', note(`${ORIGIN}\n+21\n${root}\n`)],
    ['a negative size', note(`${ORIGIN}\n-1\n${root}\n`)],
    ['a decimal point in the size', note(`${ORIGIN}\n21.0\n${root}\n`)],
    ['a size past 2^53', note(`${ORIGIN}\n18446744073709551615\n${root}\n`)],
    ['non-canonical base64 in the root', note(`${ORIGIN}\n21\n${sloppy}\n`)],
    ['unpadded base64 in the root', note(`${ORIGIN}\n21\n${root.slice(0, -1)}\n`)],
    ['URL-safe base64 in the root', note(`${ORIGIN}\n21\n${root.replace(/\+/g, '-').replace(/\//g, '_').replace(/^./, '-')}\n`)],
    ['a 31-byte root', note(`${ORIGIN}\n21\n${tree.root().subarray(1).toString('base64')}\n`)],
    ['a space in the origin', note(`fleetcast example\n21\n${root}\n`)],
    ['a tab in the origin', note(`fleetcast\texample\n21\n${root}\n`)],
    ['an empty origin', note(`\n21\n${root}\n`)],
    ['CRLF line endings', signed.replace(/\n/g, '\r\n')],
  ])('refuses %s', (_what, text) => {
    expect(code(() => parseCheckpoint(text))).toBe('SIGN_ERR_CHECKPOINT_FORMAT');
    expect(code(() => verifyCheckpoint(text, trusted))).toBe('SIGN_ERR_CHECKPOINT_FORMAT');
  });

  it('refuses to sign what it would refuse to parse', () => {
    expect(code(() => signCheckpoint({ ...cp, origin: 'has space' }, hub))).toBe('SIGN_ERR_CHECKPOINT_FORMAT');
    expect(code(() => signCheckpoint({ ...cp, size: -1 }, hub))).toBe('SIGN_ERR_CHECKPOINT_FORMAT');
    expect(code(() => signCheckpoint({ ...cp, size: 1.5 }, hub))).toBe('SIGN_ERR_CHECKPOINT_FORMAT');
    expect(code(() => signCheckpoint({ ...cp, rootHash: Buffer.alloc(20) }, hub))).toBe('SIGN_ERR_CHECKPOINT_FORMAT');
  });

  it('3,000 random mutations of a signed checkpoint end in coded errors, never a crash', () => {
    let seed = 6962;
    const rand = (n: number) => Math.floor(((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32) * n);
    const chars = ['\n', ' ', '\u2014', '0', 'A', '=', '+', '/', '\r', '\u00a0', 'é'];
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const at = rand(signed.length);
      const op = rand(3);
      const c = chars[rand(chars.length)];
      const text = op === 0 ? signed.slice(0, at) + signed.slice(at + 1) : op === 1 ? signed.slice(0, at) + c + signed.slice(at) : signed.slice(0, at) + c + signed.slice(at + 1);
      const got = code(() => verifyCheckpoint(text, trusted));
      if (got === 'accepted') expect(text, 'only a no-op mutation may verify').toBe(signed);
      else expect(got).toMatch(/^SIGN_ERR_CHECKPOINT_(FORMAT|SIGNATURE|UNTRUSTED)$/);
      seen.add(got);
    }
    expect(seen.size).toBeGreaterThanOrEqual(3);
    expect(verifyCheckpoint(signed, trusted).size).toBe(21);
  });
});
