/**
 * DSSE envelope (https://github.com/secure-systems-lab/dsse, protocol v1).
 * Signatures cover PAE(payloadType, payload): the exact payload bytes, never a
 * re-serialisation, so a verifier checks what was signed and parses only after.
 */
import { arr, base64, obj, parse, str, type Infer } from './schema.js';

export const envelopeSchema = obj({
  payloadType: str({ min: 1, max: 200 }),
  payload: base64(64 * 1024 * 1024),
  signatures: arr(obj({ keyid: str({ min: 1, max: 128 }), sig: base64(200) }), { max: 32 }),
});
export type Envelope = Infer<typeof envelopeSchema>;

export const PAYLOAD_TYPES = {
  root: 'application/vnd.fleetcast.root+json',
  manifest: 'application/vnd.fleetcast.bundle-manifest+json',
  assignment: 'application/vnd.fleetcast.assignment+json',
  checkpoint: 'application/vnd.fleetcast.checkpoint+json',
  /** Hub → one device: operator control such as debug raw sampling (protocol/control.ts, issue #5). */
  control: 'application/vnd.fleetcast.control+json',
} as const;

/** Pre-Authentication Encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'), type,
    Buffer.from(` ${payload.length} `, 'utf8'), Buffer.from(payload),
  ]);
}

export function parseEnvelope(value: unknown): Envelope {
  return parse(envelopeSchema, value, { what: 'signed envelope' });
}
