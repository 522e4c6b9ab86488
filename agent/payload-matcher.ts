/**
 * A seam of the MQTT receive path for the simulator only (a device has none,
 * and its framer copies every packet as it always did). 10,000 simulated
 * devices in one process receive the same 256 KB chunks 10,000 times; copied
 * into a fresh buffer each time, that is gigabytes of short-lived external
 * memory, and V8 answers external growth with full collections that mark every
 * device's heap. With a matcher, the framer (mqtt-framer.ts) compares a large
 * PUBLISH's payload, read by read, straight from the socket's read buffer with
 * reference buffers of the same length and first bytes; when every byte is
 * equal it hands mqtt.js the reference itself (the payload reaching the agent
 * is a view of it), and on the first difference it falls back to a copy.
 *
 * A reference says nothing about whether its bytes are valid: the agent checks
 * every chunk against its signed manifest as before (the simulator's shared
 * check may recognise a reference by identity, simulator/shared-verify.ts, and
 * only ever by bytes whose sha256 it checked).
 */

/** Payload bytes the framer reads before asking for candidates (a payload shorter than MIN is always copied). */
export const PAYLOAD_PROBE_BYTES = 16;

/**
 * A large payload the framers of a fleet are receiving now with no reference for it yet (the devices get the
 * same chunk at about the same time, and none has finished it when most begin it): one buffer, filled from
 * the start by whichever framer is furthest ahead, each other framer comparing its bytes with what is filled.
 * A framer whose bytes differ leaves it and copies its own; bytes below `filled` never change.
 */
export interface PendingPayload {
  readonly bytes: Buffer;
  filled: number;
}

export interface PayloadMatcher {
  /**
   * Buffers of exactly `length` bytes that may equal a payload whose first PAYLOAD_PROBE_BYTES bytes are
   * `head`. Their bytes are never modified, by the matcher or anyone it hands them to: the framer passes
   * one on as the payload of every packet equal to it. The framer compares every byte itself.
   */
  candidates(length: number, head: Uint8Array): readonly Buffer[];
  /**
   * A large payload that no candidate matched, received whole (the framer's own copy, which goes on to
   * mqtt.js): the matcher may keep a copy of it as a reference for the next device.
   */
  received?(payload: Buffer): void;
  /**
   * The payload of `length` bytes starting with `head` (PAYLOAD_PROBE_BYTES) that framers are receiving now,
   * made (holding `head`) if there is none.
   */
  pending?(length: number, head: Uint8Array): PendingPayload;
  /** A pending payload filled to its end by framers whose every byte matched it: the reference for it. */
  complete?(p: PendingPayload): Buffer;
}
