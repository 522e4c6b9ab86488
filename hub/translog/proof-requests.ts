/**
 * A device holding checkpoint `from` saw checkpoint `to` and asks for the
 * consistency proof between them (RFC 9162 2.1.4). The answer goes to that
 * device's own proof topic; a range the log cannot prove (a size beyond the
 * log, or from > to: the device has seen a longer history than this log has)
 * is answered with the error code, so the agent can report it rather than wait.
 */
import { errorCode } from '@fleetcast/protocol/errors.js';
import { encode, PROTOCOL_VERSION } from '@fleetcast/protocol/messages.js';
import { topics } from '@fleetcast/protocol/topics.js';
import type { TransparencyLog } from './translog.js';

export async function answerProofRequest(log: TransparencyLog, r: { deviceId: string; from: number; to: number }, publish: (topic: string, payload: Buffer) => Promise<void>): Promise<void> {
  let proof: string[] = [];
  let error: string | null = null;
  try {
    proof = log.consistencyProof(r.from, r.to).map((h) => h.toString('base64'));
  } catch (e) {
    error = errorCode(e);
  }
  await publish(topics.proof(r.deviceId), encode({ v: PROTOCOL_VERSION, from: r.from, to: r.to, proof, error })).catch(() => {});
}
