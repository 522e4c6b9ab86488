/**
 * One verification routine, two ways to run it. A check that verifies
 * signatures (an envelope's threshold, a signed note) is written once as a
 * generator that yields each Ed25519 verification it needs and gets the answer
 * back; `settleSync` answers with the synchronous verifier (the hub, the CLI,
 * audits), `settleAsync` with the one that runs on libuv's threadpool (the
 * agent, where a millisecond of verification on the event loop delays the
 * predictions in flight). So both apply exactly the same rules.
 */
import { verifyBytes, verifyBytesAsync } from './ed25519.js';

export interface VerifyStep { publicKey: Uint8Array; message: Uint8Array; signature: Uint8Array }
export type Verifying<T> = Generator<VerifyStep, T, boolean>;

export function settleSync<T>(steps: Verifying<T>): T {
  let r = steps.next(false);
  while (!r.done) r = steps.next(verifyBytes(r.value.publicKey, r.value.message, r.value.signature));
  return r.value;
}

export async function settleAsync<T>(steps: Verifying<T>): Promise<T> {
  let r = steps.next(false);
  while (!r.done) r = steps.next(await verifyBytesAsync(r.value.publicKey, r.value.message, r.value.signature));
  return r.value;
}
