/**
 * Transparency-log checkpoints (c2sp.org/tlog-checkpoint) as Ed25519 signed
 * notes (c2sp.org/signed-note): the hub signs one per log update, agents keep
 * the last one they saw, auditors check them offline.
 *
 *   <origin>\n<size>\n<root hash base64>\n\n— <key name> <base64(key hash || signature)>\n…
 *
 * Parsing is strict, because two parties must agree on exactly which bytes were
 * signed: anything a canonical signer would not have written is refused.
 */
import { createHash } from 'node:crypto';
import { errorFactory, type ErrorTable } from '@fleetcast/protocol/errors.js';
import { signBytes, type KeyPair } from './ed25519.js';
import { settleAsync, settleSync, type Verifying } from './verify-steps.js';

export const CHECKPOINT_ERRORS = {
  SIGN_ERR_CHECKPOINT_FORMAT: { message: 'A checkpoint is not in the signed checkpoint format (c2sp.org/tlog-checkpoint): origin line, decimal tree size, base64 root hash, a blank line, then signature lines, each line ending in a newline. Fetch it again unchanged', status: 400 },
  SIGN_ERR_CHECKPOINT_SIGNATURE: { message: 'A checkpoint signature from a trusted log key did not verify; the checkpoint was changed after signing. Keep this copy as evidence and fetch it again', status: 400 },
  SIGN_ERR_CHECKPOINT_UNTRUSTED: { message: 'A checkpoint carries too few valid signatures from trusted log keys; check the key names and public keys configured for the log', status: 400 },
  SIGN_ERR_CHECKPOINT_ORIGIN: { message: 'A checkpoint is for a different log (origin) than expected; point the client at the right log or fix its configured origin', status: 400 },
  SIGN_ERR_CHECKPOINT_KEY: { message: 'A checkpoint signing or verification key is invalid: key names are non-empty with no spaces or "+", Ed25519 public keys are 32 bytes, and the threshold is between 1 and the number of keys', status: 400 },
} as const satisfies ErrorTable;

export const checkpointError = errorFactory(CHECKPOINT_ERRORS);

export interface Checkpoint { origin: string; size: number; rootHash: Buffer }
export interface NoteSigner { name: string; keyPair: Pick<KeyPair, 'publicKey' | 'secretKey'> }
export interface NoteVerifier { name: string; publicKey: Uint8Array }
export interface NoteSignature { name: string; keyHash: Buffer; signature: Buffer }

const SIG_PREFIX = '\u2014 '; // "— ": em dash and space (signed-note)
const ALG_ED25519 = 0x01; // signature type byte in the key hash (signed-note, Ed25519)
const MAX_NOTE = 64 * 1024; // a checkpoint with many cosignatures is a few KiB
const MAX_SIGNATURES = 100; // bounds verification work, as the Go reference implementation does
const HASH_SIZE = 32;

const format = (detail: string) => checkpointError('SIGN_ERR_CHECKPOINT_FORMAT', detail);

/** Key names and origins: non-empty, no Unicode whitespace, no "+" (signed-note key names; tlog-checkpoint origin). */
function isValidName(s: unknown): s is string {
  return typeof s === 'string' && s.length > 0 && !/[\s+]/u.test(s) && wellFormed(s);
}

function wellFormed(s: string): boolean {
  // Lone surrogates would not survive the UTF-8 encoding the signature covers.
  // With the u flag a surrogate class matches only unpaired surrogates.
  return !/[\ud800-\udfff]/u.test(s) && !/\p{Cc}/u.test(s.replace(/\n/g, ''));
}

/** Strict standard base64 with padding: decoding then encoding must give the same text. */
function decodeBase64(s: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : undefined;
}

/** The 4-byte key hash: SHA-256(name || "\n" || 0x01 || public key)[:4] (signed-note, Ed25519). */
export function noteKeyHash(name: string, publicKey: Uint8Array): Buffer {
  return createHash('sha256').update(name, 'utf8').update(Buffer.from([0x0a, ALG_ED25519])).update(publicKey).digest().subarray(0, 4);
}

function checkSigner(s: NoteSigner): NoteSigner {
  if (!s || !isValidName(s.name)) throw checkpointError('SIGN_ERR_CHECKPOINT_KEY', `bad signer name ${JSON.stringify(s?.name)}`);
  const { publicKey, secretKey } = s.keyPair ?? {};
  // tweetnacl secret keys are seed || public key; a mismatch would sign under one key hash with another key.
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32 || !(secretKey instanceof Uint8Array) || secretKey.length !== 64
    || !Buffer.from(secretKey.subarray(32)).equals(Buffer.from(publicKey))) {
    throw checkpointError('SIGN_ERR_CHECKPOINT_KEY', `signer ${s.name} needs a 32-byte Ed25519 public key and its matching 64-byte secret key`);
  }
  return s;
}

/** Sign note text (which must end in a newline) with one or more keys; returns the whole signed note. */
export function signNote(text: string, signers: NoteSigner | readonly NoteSigner[]): string {
  if (typeof text !== 'string' || !text.endsWith('\n') || text.includes('\n\n') || !wellFormed(text)) throw format('note text must be well-formed text ending in a newline, with no blank lines or control characters');
  const list = (Array.isArray(signers) ? signers : [signers]) as readonly NoteSigner[];
  if (list.length === 0) throw checkpointError('SIGN_ERR_CHECKPOINT_KEY', 'no signer given');
  const msg = Buffer.from(text, 'utf8');
  const lines = list.map(checkSigner).map((s) => {
    const sig = Buffer.concat([noteKeyHash(s.name, s.keyPair.publicKey), signBytes(s.keyPair.secretKey, msg)]);
    return `${SIG_PREFIX}${s.name} ${sig.toString('base64')}\n`;
  });
  return `${text}\n${lines.join('')}`;
}

/** Split a signed note into its text and signature lines, checking the syntax only. */
export function parseNote(note: string): { text: string; signatures: NoteSignature[] } {
  if (typeof note !== 'string') throw format('the note is not text');
  if (note.length > MAX_NOTE) throw format(`the note is ${note.length} characters; the limit is ${MAX_NOTE}`);
  if (!note.endsWith('\n')) throw format('the note does not end in a newline');
  if (!wellFormed(note)) throw format('the note contains control characters or malformed Unicode');
  // The text ends at the last blank line: signature lines never contain one.
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw format('there is no blank line between the text and the signatures');
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split('\n');
  if (note.length === split + 2) throw format('the note has no signature lines');
  if (lines.length > MAX_SIGNATURES) throw format(`the note has ${lines.length} signature lines; the limit is ${MAX_SIGNATURES}`);
  const signatures = lines.map((line, i) => {
    const m = /^\u2014 ([^ ]+) ([^ ]+)$/u.exec(line);
    if (!m || !isValidName(m[1])) throw format(`signature line ${i + 1} is not "— <key name> <base64>"`);
    const raw = decodeBase64(m[2]);
    if (!raw || raw.length < 5) throw format(`signature line ${i + 1} (${m[1]}) is not canonical base64 of a key hash and a signature`);
    return { name: m[1], keyHash: raw.subarray(0, 4), signature: raw.subarray(4) };
  });
  return { text, signatures };
}

function checkVerifiers(verifiers: readonly NoteVerifier[], threshold: number): void {
  if (!Array.isArray(verifiers) || verifiers.length === 0) throw checkpointError('SIGN_ERR_CHECKPOINT_KEY', 'no verifier keys given');
  for (const v of verifiers) {
    if (!v || !isValidName(v.name) || !(v.publicKey instanceof Uint8Array) || v.publicKey.length !== 32) throw checkpointError('SIGN_ERR_CHECKPOINT_KEY', `bad verifier ${JSON.stringify(v?.name)}`);
  }
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > verifiers.length) throw checkpointError('SIGN_ERR_CHECKPOINT_KEY', `threshold ${threshold} with ${verifiers.length} keys`);
}

/**
 * Verify a signed note: lines from keys we do not know (by name and key hash)
 * are ignored, as signed-note prescribes, so witnesses can add cosignatures; a
 * line from a known key that does not verify rejects the whole note; repeated
 * lines from one key count once. Returns the text and the names that signed it.
 */
export function openNote(note: string, verifiers: readonly NoteVerifier[], opts: { threshold?: number } = {}): { text: string; signedBy: string[] } {
  return settleSync(noteSteps(note, verifiers, opts));
}

function* noteSteps(note: string, verifiers: readonly NoteVerifier[], opts: { threshold?: number }): Verifying<{ text: string; signedBy: string[] }> {
  const threshold = opts.threshold ?? 1;
  checkVerifiers(verifiers, threshold);
  const { text, signatures } = parseNote(note);
  const msg = Buffer.from(text, 'utf8');
  const keyed = verifiers.map((v) => ({ ...v, keyHash: noteKeyHash(v.name, v.publicKey) }));
  const good = new Set<number>();
  const unknown = new Set<string>();
  for (const s of signatures) {
    const candidates = keyed.map((v, i) => [v, i] as const).filter(([v]) => v.name === s.name && v.keyHash.equals(s.keyHash));
    if (candidates.length === 0) { unknown.add(s.name); continue; }
    let ok: (typeof candidates)[number] | undefined;
    for (const c of candidates) if (yield { publicKey: c[0].publicKey, message: msg, signature: s.signature }) { ok = c; break; }
    if (!ok) throw checkpointError('SIGN_ERR_CHECKPOINT_SIGNATURE', `the signature by ${s.name} does not match the note text`);
    good.add(ok[1]);
  }
  if (good.size < threshold) {
    const others = unknown.size ? `; lines from keys not trusted here: ${[...unknown].join(', ')}` : '';
    throw checkpointError('SIGN_ERR_CHECKPOINT_UNTRUSTED', `${good.size} of the ${threshold} required trusted keys signed${others}`);
  }
  return { text, signedBy: [...good].sort((a, b) => a - b).map((i) => verifiers[i].name) };
}

/** The note text of a checkpoint: origin, decimal size and base64 root hash, one per line (tlog-checkpoint). */
export function formatCheckpoint(cp: Checkpoint): string {
  if (!cp || !isValidName(cp.origin)) throw format(`origin ${JSON.stringify(cp?.origin)} must be non-empty with no spaces or "+"`);
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) throw format(`tree size ${String(cp.size)} must be a non-negative safe integer`);
  if (!(cp.rootHash instanceof Uint8Array) || cp.rootHash.length !== HASH_SIZE) throw format(`the root hash must be ${HASH_SIZE} bytes`);
  return `${cp.origin}\n${cp.size}\n${Buffer.from(cp.rootHash).toString('base64')}\n`;
}

/**
 * Parse checkpoint note text. fleetcast writes no extension lines, so any line
 * after the root hash is refused rather than silently carried along unread.
 */
export function parseCheckpointBody(text: string): Checkpoint {
  const lines = text.split('\n');
  if (lines.length !== 4 || lines[3] !== '') throw format(`the checkpoint body has ${lines.length - 1} lines; it must be exactly origin, size and root hash`);
  const [origin, sizeText, hashText] = lines;
  if (!isValidName(origin)) throw format(`origin ${JSON.stringify(origin)} must be non-empty with no spaces or "+"`);
  // Canonical decimal only: "007" and "7" must not be two encodings of one signed size.
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) throw format(`tree size ${JSON.stringify(sizeText)} is not a canonical decimal number`);
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw format(`tree size ${sizeText} is larger than this implementation supports (2^53 - 1)`);
  const rootHash = decodeBase64(hashText);
  if (!rootHash || rootHash.length !== HASH_SIZE) throw format(`root hash ${JSON.stringify(hashText)} is not canonical base64 of ${HASH_SIZE} bytes`);
  return { origin, size, rootHash };
}

/** Parse a signed checkpoint without verifying its signatures (for display and triage). */
export function parseCheckpoint(text: string): Checkpoint & { signatures: NoteSignature[] } {
  const { text: body, signatures } = parseNote(text);
  return { ...parseCheckpointBody(body), signatures };
}

/** Sign a checkpoint with the log's key (and any cosigners); returns the signed note text. */
export function signCheckpoint(cp: Checkpoint, signers: NoteSigner | readonly NoteSigner[]): string {
  return signNote(formatCheckpoint(cp), signers);
}

/**
 * Verify a signed checkpoint against trusted log keys and return what it states.
 * `origin` pins which log it must be from; `threshold` asks for that many
 * distinct trusted signers (e.g. the log key plus witnesses).
 */
export function verifyCheckpoint(text: string, verifiers: readonly NoteVerifier[], opts: { threshold?: number; origin?: string } = {}): Checkpoint & { signedBy: string[] } {
  return settleSync(checkpointSteps(text, verifiers, opts));
}

/** verifyCheckpoint with the signatures checked off the event loop (signing/verify-steps.ts). */
export function verifyCheckpointAsync(text: string, verifiers: readonly NoteVerifier[], opts: { threshold?: number; origin?: string } = {}): Promise<Checkpoint & { signedBy: string[] }> {
  return settleAsync(checkpointSteps(text, verifiers, opts));
}

function* checkpointSteps(text: string, verifiers: readonly NoteVerifier[], opts: { threshold?: number; origin?: string }): Verifying<Checkpoint & { signedBy: string[] }> {
  const parsed = parseCheckpoint(text);
  if (opts.origin !== undefined && parsed.origin !== opts.origin) throw checkpointError('SIGN_ERR_CHECKPOINT_ORIGIN', `expected ${JSON.stringify(opts.origin)}, got ${JSON.stringify(parsed.origin)}`);
  const { signedBy } = yield* noteSteps(text, verifiers, { threshold: opts.threshold });
  return { origin: parsed.origin, size: parsed.size, rootHash: parsed.rootHash, signedBy };
}
