/**
 * Trust messages (issue #6): the hub keeps the root chain and the latest log
 * checkpoint retained for every device, and answers a device's request for a
 * consistency proof between the checkpoint it holds and a newer one
 * (RFC 9162 2.1.4). Decoded like every other message: size cap, then schema.
 */
import { envelopeSchema } from './envelope.js';
import { decodeJson } from './messages.js';
import { arr, int, nullable, obj, optional, str } from './schema.js';
import { DEVICE_ID_PATTERN } from './topics.js';

const v = int({ min: 1, max: 1 });
const size = int({ min: 0, max: Number.MAX_SAFE_INTEGER });
const hash = str({ pattern: /^[A-Za-z0-9+/]{43}=$/ });

/** Hub → all, retained on fc/v1/trust/roots: root envelopes, oldest first. */
export const rootsMessageSchema = obj({ v, roots: arr(envelopeSchema, { min: 1, max: 256 }) });
/**
 * Hub → all, retained on fc/v1/trust/checkpoint: a signed note (c2sp.org/tlog-checkpoint), with the
 * consistency proof from the previous checkpoint, so an agent that was online for that one needs no
 * round trip; one further behind asks with proof-req.
 */
export const checkpointMessageSchema = obj({ v, checkpoint: str({ max: 64 * 1024 }), proof: optional(obj({ from: size, hashes: arr(hash, { max: 128 }) })) });
/** Device → hub on fc/v1/dev/<id>/proof-req. */
export const proofRequestSchema = obj({ v, deviceId: str({ pattern: DEVICE_ID_PATTERN }), from: size, to: size });
/** Hub → device on fc/v1/dev/<id>/proof: the proof, or the code of why there is none. */
export const proofResponseSchema = obj({ v, from: size, to: size, proof: arr(hash, { max: 128 }), error: optional(nullable(str({ max: 64 }))) });

export const TRUST_MESSAGE_LIMITS = { roots: 4 * 1024 * 1024, checkpoint: 64 * 1024 + 256, 'proof-req': 1024, proof: 16 * 1024 } as const;

export const decodeRootsMessage = (b: Uint8Array | string) => decodeJson(rootsMessageSchema, b, TRUST_MESSAGE_LIMITS.roots, 'roots message');
export const decodeCheckpointMessage = (b: Uint8Array | string) => decodeJson(checkpointMessageSchema, b, TRUST_MESSAGE_LIMITS.checkpoint, 'checkpoint message');
export const decodeProofRequest = (b: Uint8Array | string) => decodeJson(proofRequestSchema, b, TRUST_MESSAGE_LIMITS['proof-req'], 'proof request');
export const decodeProofResponse = (b: Uint8Array | string) => decodeJson(proofResponseSchema, b, TRUST_MESSAGE_LIMITS.proof, 'proof response');
