/**
 * The signed-note layer under checkpoints (c2sp.org/signed-note): byte-for-byte
 * agreement with the Go reference implementation's published example, and the
 * verification rules (unknown keys ignored, known bad signatures fatal, repeats
 * counted once, thresholds).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { noteKeyHash, openNote, parseNote, signNote } from '../../signing/checkpoint.js';
import { generateKeyPair, keyPairFromSeed } from '../../signing/ed25519.js';

// The example key pair and note from golang.org/x/mod/sumdb/note (its package documentation and tests).
const VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const SIGLINE = '\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';

/** name+hash+base64(0x01 || key): the material is everything after the second (or fourth) "+", and may itself hold "+". */
function material(key: string, skip: number): Buffer {
  const raw = Buffer.from(key.split('+').slice(skip).join('+'), 'base64');
  expect(raw[0]).toBe(0x01); // Ed25519
  return raw.subarray(1);
}

const code = (fn: () => unknown): string => {
  try { fn(); return 'accepted'; } catch (e) { return (e as { code: string }).code; }
};

describe('signed notes', () => {
  const peterPub = material(VKEY, 2);
  const peter = keyPairFromSeed(material(SKEY, 4));

  it('reproduces the Go reference note byte for byte and verifies it', () => {
    expect(Buffer.from(peter.publicKey).equals(peterPub)).toBe(true);
    expect(noteKeyHash('PeterNeumann', peterPub).toString('hex')).toBe('c74f20a3');
    // The key hash is SHA-256(name || 0x0A || 0x01 || key)[:4], computed here independently.
    const h = createHash('sha256').update(Buffer.concat([Buffer.from('PeterNeumann\n'), Buffer.from([1]), peterPub])).digest();
    expect(h.subarray(0, 4).toString('hex')).toBe('c74f20a3');
    const note = signNote(TEXT, { name: 'PeterNeumann', keyPair: peter });
    expect(note).toBe(`${TEXT}\n${SIGLINE}`);
    expect(openNote(note, [{ name: 'PeterNeumann', publicKey: peterPub }])).toEqual({ text: TEXT, signedBy: ['PeterNeumann'] });
    expect(code(() => openNote(note.replace('cryptography', 'cryptographY'), [{ name: 'PeterNeumann', publicKey: peterPub }]))).toBe('SIGN_ERR_CHECKPOINT_SIGNATURE');
  });

  it('ignores lines from unknown keys, counts repeats once, and enforces a threshold of distinct keys', () => {
    const a = { name: 'log.example/a', keyPair: generateKeyPair() };
    const b = { name: 'witness.example/b', keyPair: generateKeyPair() };
    const stranger = { name: 'stranger', keyPair: generateKeyPair() };
    const va = { name: a.name, publicKey: a.keyPair.publicKey };
    const vb = { name: b.name, publicKey: b.keyPair.publicKey };
    const text = 'hello\nworld\n';
    const both = signNote(text, [a, stranger, b]);
    expect(parseNote(both).signatures.map((s) => s.name)).toEqual([a.name, 'stranger', b.name]);
    expect(openNote(both, [va, vb], { threshold: 2 }).signedBy).toEqual([a.name, b.name]);
    expect(openNote(both, [vb]).signedBy).toEqual([b.name]);
    const aLine = signNote(text, a).slice(text.length + 1);
    const twice = `${text}\n${aLine}${aLine}`;
    expect(openNote(twice, [va]).signedBy).toEqual([a.name]);
    expect(code(() => openNote(twice, [va, vb], { threshold: 2 }))).toBe('SIGN_ERR_CHECKPOINT_UNTRUSTED');
    expect(code(() => openNote(signNote(text, stranger), [va, vb]))).toBe('SIGN_ERR_CHECKPOINT_UNTRUSTED');
  });

  it.each([
    ['no trailing newline', `${TEXT}\n${SIGLINE}`.slice(0, -1)],
    ['no signatures', `${TEXT}\n`],
    ['no blank line', `${TEXT}${SIGLINE}`],
    ['a hyphen instead of the em dash', `${TEXT}\n- ${SIGLINE.slice(2)}`],
    ['two spaces after the name', `${TEXT}\n${SIGLINE.replace('PeterNeumann ', 'PeterNeumann  ')}`],
    ['a "+" in the key name', `${TEXT}\n${SIGLINE.replace('PeterNeumann', 'Peter+Neumann')}`],
    ['a signature too short to hold a key hash', `${TEXT}\n\u2014 PeterNeumann AAAA\n`],
    ['base64 without padding', `${TEXT}\n${SIGLINE.replace('AM=\n', 'AM\n')}`],
    ['a carriage return', `${TEXT.replace('\n', '\r\n')}\n${SIGLINE}`],
    ['101 signature lines', `${TEXT}\n${SIGLINE.repeat(101)}`],
    ['a note of 100 KiB', `${'x'.repeat(100 * 1024)}\n\n${SIGLINE}`],
    ['an unpaired surrogate', `${TEXT}\ud800\n\n${SIGLINE}`],
  ])('refuses a note with %s', (_what, note) => {
    expect(code(() => openNote(note, [{ name: 'PeterNeumann', publicKey: peterPub }]))).toBe('SIGN_ERR_CHECKPOINT_FORMAT');
  });

  it('refuses bad keys and bad text to sign with coded errors', () => {
    const kp = generateKeyPair();
    const other = generateKeyPair();
    expect(code(() => signNote('no newline', { name: 'k', keyPair: kp }))).toBe('SIGN_ERR_CHECKPOINT_FORMAT');
    expect(code(() => signNote('a\n\nb\n', { name: 'k', keyPair: kp }))).toBe('SIGN_ERR_CHECKPOINT_FORMAT');
    expect(code(() => signNote('a\n', { name: 'has space', keyPair: kp }))).toBe('SIGN_ERR_CHECKPOINT_KEY');
    expect(code(() => signNote('a\n', { name: 'k', keyPair: { publicKey: other.publicKey, secretKey: kp.secretKey } }))).toBe('SIGN_ERR_CHECKPOINT_KEY');
    expect(code(() => signNote('a\n', []))).toBe('SIGN_ERR_CHECKPOINT_KEY');
    const note = signNote('a\n', { name: 'k', keyPair: kp });
    expect(code(() => openNote(note, [{ name: 'k', publicKey: kp.publicKey.subarray(1) }]))).toBe('SIGN_ERR_CHECKPOINT_KEY');
    expect(code(() => openNote(note, []))).toBe('SIGN_ERR_CHECKPOINT_KEY');
    expect(code(() => openNote(note, [{ name: 'k', publicKey: kp.publicKey }], { threshold: 2 }))).toBe('SIGN_ERR_CHECKPOINT_KEY');
    expect(code(() => openNote(note, [{ name: 'k', publicKey: kp.publicKey }], { threshold: 0 }))).toBe('SIGN_ERR_CHECKPOINT_KEY');
    expect(code(() => openNote(42 as unknown as string, [{ name: 'k', publicKey: kp.publicKey }]))).toBe('SIGN_ERR_CHECKPOINT_FORMAT');
    expect(openNote(note, [{ name: 'k', publicKey: kp.publicKey }]).text).toBe('a\n');
  });
});
