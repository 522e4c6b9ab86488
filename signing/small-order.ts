/**
 * Ed25519 public keys of small order. With such a key A, the "signature"
 * R = identity, S = 0 satisfies the cofactorless check [S]B = R + [k]A for every
 * message, and both node:crypto (OpenSSL) and tweetnacl accept it (tested in
 * test/unit/small-order.test.ts). So fleetcast refuses these keys outright:
 * in every verification and in root.json. The list is libsodium's
 * (crypto_sign_ed25519 has_small_order / ge25519_has_small_order): the
 * encodings of the 8 torsion points, plus non-canonical encodings of 0, 1
 * and p-1 that decode to them; the sign bit (bit 255) is ignored, as a
 * decoder would treat x = 0 with either sign the same way.
 */
const hex = (h: string) => Buffer.from(h, 'hex');
const BLOCKLIST: Buffer[] = [
  hex('0000000000000000000000000000000000000000000000000000000000000000'), // 0 (order 4)
  hex('0100000000000000000000000000000000000000000000000000000000000000'), // 1 (identity, order 1)
  hex('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05'), // order 8
  hex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'), // order 8
  hex('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'), // p-1 (order 2)
  hex('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'), // p   (= 0, non-canonical)
  hex('eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'), // p+1 (= 1, non-canonical)
];

export function isSmallOrderKey(publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32) return false;
  const k = Buffer.from(publicKey);
  k[31] &= 0x7f;
  return BLOCKLIST.some((b) => b.equals(k));
}
