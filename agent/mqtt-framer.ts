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
 * every packet as before.
 */

/** A remaining length takes at most 4 bytes ([MQTT-2.2.3]); after them the stream is passed on as it is, for mqtt.js to refuse. */
const MAX_LENGTH_BYTES = 4;

export class MqttFramer {
  /** The packet being filled and how much of it is. */
  #packet: Buffer | null = null;
  #filled = 0;
  /** Fixed-header bytes of the next packet while its length is not known yet (type byte, then the length's bytes). */
  readonly #header = Buffer.alloc(1 + MAX_LENGTH_BYTES);
  #headerLength = 0;
  /** A malformed length was seen: bytes go on unframed (mqtt.js's parser then fails the connection). */
  #broken = false;

  /** Copy `bytes` (the caller may reuse them) into packets; `emit` gets each one as soon as it is complete. */
  push(bytes: Uint8Array, emit: (packet: Buffer) => void): void {
    if (this.#broken) { emit(Buffer.from(bytes)); return; }
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
        if (this.#headerLength === 1 + MAX_LENGTH_BYTES) {
          this.#broken = true;
          emit(Buffer.concat([this.#header, bytes.subarray(i)]));
          return;
        }
        continue;
      }
      let length = 0;
      for (let k = this.#headerLength - 1; k >= 1; k--) length = length * 128 + (this.#header[k] & 0x7f);
      const packet = Buffer.allocUnsafe(this.#headerLength + length);
      this.#header.copy(packet, 0, 0, this.#headerLength);
      this.#filled = this.#headerLength;
      this.#headerLength = 0;
      if (length === 0) emit(packet);
      else this.#packet = packet;
    }
  }
}
