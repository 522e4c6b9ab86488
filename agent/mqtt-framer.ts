/**
 * Whole MQTT packets out of a TCP byte stream, each in one buffer of exactly
 * its size. mqtt.js reads its socket into a fresh 64 KB buffer per read and,
 * for a message longer than one read (a 256 KB bundle chunk), copies the
 * payload out of those reads into another buffer: every received byte was
 * allocated twice, and the partial reads of a message still arriving stayed
 * alive across collections. Fed whole packets instead (framed-stream.ts), its
 * parser takes each payload as a view of the packet's own buffer: one
 * allocation per packet, of its size. The framer only splits on the fixed
 * header's remaining length ([MQTT-2.2.3]); mqtt.js still parses and checks
 * every packet as before. A malformed or oversized length fails the stream
 * with a coded error (the connection is dropped, as mqtt.js would not: its
 * parser reports an error and goes on reading).
 *
 * With a payload matcher (payload-matcher.ts, the simulator's only), a large
 * PUBLISH is not copied while its bytes equal a reference's: its headers and
 * first payload bytes are kept (a small buffer), the rest is compared in place
 * in each read, and when the whole payload matched mqtt.js gets the headers,
 * then the reference itself; its parser takes a payload that lies within one
 * buffer as a view of it (bl's slice), so no payload byte was allocated. On
 * the first difference the packet is allocated as without a matcher and the
 * bytes so far (equal to the reference's prefix) are copied from it. With no
 * reference yet, the payload is read into the matcher's pending buffer for it,
 * shared with the other framers receiving it: bytes already there are compared,
 * bytes past them written (the framer furthest ahead fills it), and once all
 * of it matched or was written it is the reference handed on.
 */

import { HUB_MAX_PACKET_BYTES } from '@fleetcast/protocol/channel-limits.js';
import { agentError } from './errors.js';
import { PAYLOAD_PROBE_BYTES, type PayloadMatcher, type PendingPayload } from './payload-matcher.js';

/** A remaining length takes at most 4 bytes ([MQTT-2.2.3]). */
const MAX_LENGTH_BYTES = 4;
/** A smaller PUBLISH is copied even with a matcher: comparing buys nothing there. */
export const MIN_MATCHED_PAYLOAD = 16 * 1024;
/** Fixed header, topic, packet id and probe kept while matching; a longer topic takes the copying path. */
const MAX_HEAD_BYTES = 1024;
/** PUBLISH's packet type ([MQTT-2.2.1]). */
const PUBLISH = 3;

export class MqttFramer {
  /** The packet being filled and how much of it is. */
  #packet: Buffer | null = null;
  #filled = 0;
  /** Fixed-header bytes of the next packet while its length is not known yet (type byte, then the length's bytes). */
  readonly #header = Buffer.alloc(1 + MAX_LENGTH_BYTES);
  #headerLength = 0;
  /**
   * The largest remaining length taken. A packet's buffer is allocated from its declared length
   * before its bytes arrive, so a broker's five bytes could otherwise claim 256 MB (mqtt.js's own
   * parser only grew with the bytes received). No packet of the hub's is longer: the embedded
   * broker refuses one by the same measure (hub/broker.ts limitPackets), mosquitto a shorter one.
   */
  readonly #maxPacketBytes: number;
  /** The stream was malformed: nothing more is framed. */
  #failed: Error | null = null;
  readonly #matcher: PayloadMatcher | undefined;
  /**
   * A large PUBLISH read without a copy: its fixed header, variable header and first payload bytes (`head`,
   * `headFilled` of them), where its payload starts in it (0 while unknown), the packet's whole size, the
   * references still equal to every payload byte read, and how many payload bytes that is.
   */
  #head: Buffer | null = null;
  #fixed = 0;
  #headFilled = 0;
  #payloadAt = 0;
  #packetLength = 0;
  #candidates: readonly Buffer[] = [];
  #matched = 0;
  /** Where the payload of the packet being copied starts when it is a large PUBLISH the matcher did not have (0: none). */
  #offerAt = 0;
  /** The payload the fleet's framers are filling together, compared with and extended (its bytes are #candidates[0]). */
  #following: PendingPayload | null = null;

  constructor(maxPacketBytes = HUB_MAX_PACKET_BYTES, matcher?: PayloadMatcher) {
    this.#maxPacketBytes = maxPacketBytes;
    this.#matcher = matcher;
  }

  /**
   * Copy `bytes` (the caller may reuse them) into packets; `emit` gets each one as soon as it is complete
   * (a PUBLISH matched with a reference in two pieces: its headers, then the reference; a parser reading the
   * pieces in order reads the same packet).
   * Returns a coded error, and frames nothing more, once the stream is malformed (a remaining length of more
   * than 4 bytes, or a packet larger than the limit): the caller drops the connection ([MQTT-4.8.0-1]).
   */
  push(bytes: Uint8Array, emit: (packet: Buffer) => void): Error | null {
    if (this.#failed) return this.#failed;
    let i = 0;
    while (i < bytes.length) {
      if (this.#head) { i = this.#match(bytes, i, emit); continue; }
      const p = this.#packet;
      if (p) {
        const n = Math.min(bytes.length - i, p.length - this.#filled);
        p.set(bytes.subarray(i, i + n), this.#filled);
        this.#filled += n;
        i += n;
        if (this.#filled === p.length) {
          this.#packet = null;
          // Kept (a copy) as a reference for the next device, if the matcher wants it.
          if (this.#offerAt > 0) { this.#matcher!.received?.(p.subarray(this.#offerAt)); this.#offerAt = 0; }
          emit(p);
        }
        continue;
      }
      const b = bytes[i++];
      this.#header[this.#headerLength++] = b;
      if (this.#headerLength === 1) continue;
      if (b & 0x80) {
        if (this.#headerLength === 1 + MAX_LENGTH_BYTES) return this.#fail(`a remaining length longer than ${MAX_LENGTH_BYTES} bytes (${this.#header.toString('hex')}…)`);
        continue;
      }
      let length = 0;
      for (let k = this.#headerLength - 1; k >= 1; k--) length = length * 128 + (this.#header[k] & 0x7f);
      if (length > this.#maxPacketBytes) {
        return this.#fail(`a packet (type byte 0x${this.#header[0].toString(16)}) of remaining length ${length}, over the ${this.#maxPacketBytes}-byte limit`);
      }
      if (this.#matcher && this.#header[0] >> 4 === PUBLISH && length >= MIN_MATCHED_PAYLOAD) {
        this.#head = Buffer.allocUnsafe(Math.min(this.#headerLength + length, MAX_HEAD_BYTES));
        this.#header.copy(this.#head, 0, 0, this.#headerLength);
        this.#fixed = this.#headerLength;
        this.#headFilled = this.#headerLength;
        this.#packetLength = this.#headerLength + length;
        this.#payloadAt = 0;
        this.#headerLength = 0;
        continue;
      }
      const packet = Buffer.allocUnsafe(this.#headerLength + length);
      this.#header.copy(packet, 0, 0, this.#headerLength);
      this.#filled = this.#headerLength;
      this.#headerLength = 0;
      if (length === 0) emit(packet);
      else this.#packet = packet;
    }
    return null;
  }

  /**
   * One step of a PUBLISH read against references, from `bytes[i]`; returns where the next step starts. First
   * the headers and probe are kept, then candidates are asked for, then each read is compared with them.
   */
  #match(bytes: Uint8Array, i: number, emit: (packet: Buffer) => void): number {
    const matcher = this.#matcher!;
    const head = this.#head!;
    if (this.#candidates.length === 0) {
      // The topic's length follows the fixed header; then the topic, the packet id (QoS 1, 2), the payload ([MQTT-3.3.2]).
      const fixed = this.#fixed;
      const want = this.#payloadAt === 0 ? fixed + 2 : this.#payloadAt + PAYLOAD_PROBE_BYTES;
      if (want > head.length) return this.#copyFrom(i);
      const n = Math.min(bytes.length - i, want - this.#headFilled);
      head.set(bytes.subarray(i, i + n), this.#headFilled);
      this.#headFilled += n;
      i += n;
      if (this.#headFilled < want) return i;
      if (this.#payloadAt === 0) {
        const qos = (head[0] >> 1) & 3;
        this.#payloadAt = fixed + 2 + head.readUInt16BE(fixed) + (qos > 0 ? 2 : 0);
        // A QoS of 3 or a topic longer than the packet: malformed, mqtt.js's parser says so.
        if (qos === 3 || this.#packetLength - this.#payloadAt < MIN_MATCHED_PAYLOAD) { this.#payloadAt = 0; return this.#copyFrom(i); }
        return i;
      }
      const length = this.#packetLength - this.#payloadAt;
      const probe = head.subarray(this.#payloadAt, want);
      const probed = (c: Buffer) => c.length === length && c.compare(probe, 0, PAYLOAD_PROBE_BYTES, 0, PAYLOAD_PROBE_BYTES) === 0;
      this.#candidates = matcher.candidates(length, probe).filter(probed);
      if (this.#candidates.length === 0) {
        // No reference yet: the payload the fleet's framers are filling together, if its first bytes are these.
        const p = matcher.pending?.(length, probe);
        if (p && p.filled >= PAYLOAD_PROBE_BYTES && probed(p.bytes)) { this.#following = p; this.#candidates = [p.bytes]; }
      }
      this.#matched = PAYLOAD_PROBE_BYTES;
      return this.#candidates.length === 0 ? this.#copyFrom(i) : i;
    }
    const length = this.#packetLength - this.#payloadAt;
    const n = Math.min(bytes.length - i, length - this.#matched);
    const from = this.#matched;
    const p = this.#following;
    if (p) {
      // Compared with what is filled, then (furthest ahead) written past it: from never exceeds filled.
      const compared = Math.min(from + n, p.filled) - from;
      if (compared > 0 && p.bytes.compare(bytes, i, i + compared, from, from + compared) !== 0) return this.#copyFrom(i);
      if (compared < n) { p.bytes.set(bytes.subarray(i + compared, i + n), from + compared); p.filled = from + n; }
    } else {
      const still = this.#candidates.filter((c) => c.compare(bytes, i, i + n, from, from + n) === 0);
      // A difference: the packet is copied from here on, its bytes so far are the reference's.
      if (still.length === 0) return this.#copyFrom(i);
      this.#candidates = still;
    }
    this.#matched += n;
    if (this.#matched === length) {
      // Every byte of the pending payload was this packet's (compared or written): the reference it becomes.
      const ref = p ? matcher.complete!(p) : this.#candidates[0];
      const headers = head.subarray(0, this.#payloadAt);
      this.#endMatch();
      emit(headers);
      emit(ref);
    }
    return i + n;
  }

  /** Give matching up: the packet is allocated and filled with what was read of it; the copying path goes on from `i`. */
  #copyFrom(i: number): number {
    const head = this.#head!;
    const packet = Buffer.allocUnsafe(this.#packetLength);
    head.copy(packet, 0, 0, this.#headFilled);
    let filled = this.#headFilled;
    if (this.#candidates.length > 0) {
      // Every payload byte after the probe, up to #matched, equalled every remaining candidate.
      filled += this.#candidates[0].copy(packet, filled, PAYLOAD_PROBE_BYTES, this.#matched);
    }
    // Only a well-formed large payload is offered (a malformed packet is left to mqtt.js's parser).
    const payloadAt = this.#payloadAt > 0 && this.#packetLength - this.#payloadAt >= MIN_MATCHED_PAYLOAD ? this.#payloadAt : 0;
    this.#endMatch();
    this.#packet = packet;
    this.#filled = filled;
    this.#offerAt = payloadAt;
    return i;
  }

  #endMatch(): void {
    this.#head = null;
    this.#following = null;
    this.#headFilled = 0;
    this.#payloadAt = 0;
    this.#candidates = [];
    this.#matched = 0;
  }

  #fail(what: string): Error {
    this.#packet = null;
    this.#offerAt = 0;
    this.#endMatch();
    return (this.#failed = agentError('AGENT_ERR_BROKER_BAD_PACKET', `the broker sent ${what}; connection dropped`));
  }
}
