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
 */

import { HUB_MAX_PACKET_BYTES } from '@fleetcast/protocol/channel-limits.js';
import { agentError } from './errors.js';

/** A remaining length takes at most 4 bytes ([MQTT-2.2.3]). */
const MAX_LENGTH_BYTES = 4;

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

  constructor(maxPacketBytes = HUB_MAX_PACKET_BYTES) { this.#maxPacketBytes = maxPacketBytes; }

  /**
   * Copy `bytes` (the caller may reuse them) into packets; `emit` gets each one as soon as it is complete.
   * Returns a coded error, and frames nothing more, once the stream is malformed (a remaining length of more
   * than 4 bytes, or a packet larger than the limit): the caller drops the connection ([MQTT-4.8.0-1]).
   */
  push(bytes: Uint8Array, emit: (packet: Buffer) => void): Error | null {
    if (this.#failed) return this.#failed;
    let i = 0;
    while (i < bytes.length) {
      const p = this.#packet;
      if (p) {
        const n = Math.min(bytes.length - i, p.length - this.#filled);
        p.set(bytes.subarray(i, i + n), this.#filled);
        this.#filled += n;
        i += n;
        if (this.#filled === p.length) { this.#packet = null; emit(p); }
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
      const packet = Buffer.allocUnsafe(this.#headerLength + length);
      this.#header.copy(packet, 0, 0, this.#headerLength);
      this.#filled = this.#headerLength;
      this.#headerLength = 0;
      if (length === 0) emit(packet);
      else this.#packet = packet;
    }
    return null;
  }

  #fail(what: string): Error {
    this.#packet = null;
    return (this.#failed = agentError('AGENT_ERR_BROKER_BAD_PACKET', `the broker sent ${what}; connection dropped`));
  }
}
