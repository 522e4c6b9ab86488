/**
 * RFC 6962 / RFC 9162 inclusion proofs, checked in the browser with WebCrypto
 * SHA-256: the console does not take the hub's word that an entry is logged.
 * Leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right)
 * (RFC 9162 2.1.1); the proof is walked as in RFC 9162 2.1.3.2.
 */
export function fromBase64(s: string): Uint8Array {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  const all = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', all));
}

export const leafHash = (entry: Uint8Array) => sha256(Uint8Array.of(0), entry);
const nodeHash = (l: Uint8Array, r: Uint8Array) => sha256(Uint8Array.of(1), l, r);

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The root hash the proof leads to from `leaf` at `index` in a tree of `size`, or an error saying why it cannot (RFC 9162 2.1.3.2). */
export async function rootFromInclusionProof(index: number, size: number, leaf: Uint8Array, proof: Uint8Array[]): Promise<Uint8Array> {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) throw new Error(`index ${index} is not below the tree size ${size}`);
  // A hash of another length is not a SHA-256 hash (an empty leaf and root would otherwise "match").
  if (leaf.length !== 32 || proof.some((p) => p.length !== 32)) throw new Error('a hash in the proof is not 32 bytes');
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new Error('the proof is longer than the tree allows');
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('the proof is shorter than the tree needs');
  return r;
}

/** The root hash of a checkpoint note (origin, size, base64 root hash; tlog-checkpoint). */
export function checkpointRoot(note: string): { size: number; root: Uint8Array } {
  const [, size, root] = note.split('\n');
  return { size: Number(size), root: fromBase64(root) };
}
