/**
 * An incremental walker over the zstd frame layout (RFC 8878 section 3.1): it
 * follows frame headers and block headers without decoding, to know whether the
 * compressed stream ended exactly at a frame boundary. The wasm decoder used on
 * Node 20 happily stops mid-frame without an error, so truncation is detected
 * here, the same way for both engines. It also reads the declared content size
 * so an oversized frame is refused before any of it is decoded.
 */
import { bundleError } from './errors.js';

const ZSTD_MAGIC = 0xfd2fb528; // RFC 8878 3.1.1
const SKIPPABLE_MASK = 0xfffffff0; // 0x184D2A5? (RFC 8878 3.1.2)
const SKIPPABLE_MAGIC = 0x184d2a50;
const BLOCK_MAX = 128 * 1024; // Block_Maximum_Size (RFC 8878 3.1.1.2.3)

type State = 'magic' | 'skippable-size' | 'frame-descriptor' | 'frame-header-rest' | 'block-header' | 'skip' | 'checksum';

export class ZstdFrameWalker {
  #state: State = 'magic';
  #need = 4;
  #buf = Buffer.alloc(18);
  #have = 0;
  #skip = 0;
  #afterSkip: State = 'magic';
  #checksum = false;
  #descriptor = 0;
  #frames = 0;
  #bytes = 0;
  /** Sum of the content sizes the frames seen so far declare: a lower bound on the decoded size. */
  declaredContentSize = 0;

  /** Feed compressed bytes in order; throws BUNDLE_ERR_DECOMPRESS on a layout error. */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === 'skip') {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        if (this.#skip === 0) this.#enter(this.#afterSkip);
        continue;
      }
      const n = Math.min(this.#need - this.#have, chunk.length - i);
      this.#buf.set(chunk.subarray(i, i + n), this.#have);
      this.#have += n;
      i += n;
      if (this.#have === this.#need) this.#field(this.#bytes + i);
    }
    this.#bytes += chunk.length;
  }

  /** Call at the end of input: throws unless the stream ended right after a complete frame. */
  finish(): void {
    if (this.#frames === 0 && this.#state === 'magic' && this.#have === 0) throw bundleError('BUNDLE_ERR_DECOMPRESS', 'the payload is empty: no zstd frame');
    if (this.#state !== 'magic' || this.#have !== 0) throw bundleError('BUNDLE_ERR_DECOMPRESS', `the zstd stream is truncated: it ends inside a frame after ${this.#bytes} bytes`);
  }

  #enter(state: State, need = 0): void {
    this.#state = state;
    this.#have = 0;
    this.#need = state === 'magic' || state === 'skippable-size' || state === 'checksum' ? 4 : state === 'block-header' ? 3 : state === 'frame-descriptor' ? 1 : need;
    // A frame header with no optional fields has nothing more to read.
    if (state === 'frame-header-rest' && need === 0) this.#frameHeader();
  }

  #skipThen(n: number, next: State): void {
    if (n === 0) { this.#enter(next); return; }
    this.#state = 'skip';
    this.#skip = n;
    this.#afterSkip = next;
  }

  #field(at: number): void {
    const b = this.#buf;
    switch (this.#state) {
      case 'magic': {
        const magic = b.readUInt32LE(0);
        if (magic === ZSTD_MAGIC) { this.#enter('frame-descriptor'); return; }
        if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) { this.#enter('skippable-size'); return; }
        throw bundleError('BUNDLE_ERR_DECOMPRESS', `no zstd frame magic at byte ${at - 4} (found 0x${magic.toString(16).padStart(8, '0')})`);
      }
      case 'skippable-size':
        this.#skipThen(b.readUInt32LE(0), 'magic');
        return;
      case 'frame-descriptor': {
        const d = b[0];
        // Reserved bit 3 must be zero (RFC 8878 3.1.1.1.1.5).
        if (d & 0x08) throw bundleError('BUNDLE_ERR_DECOMPRESS', `reserved bit set in the frame header at byte ${at - 1}`);
        this.#descriptor = d;
        this.#checksum = (d & 0x04) !== 0;
        const single = (d & 0x20) !== 0;
        const fcsFlag = d >> 6;
        const rest = (single ? 0 : 1) + [0, 1, 2, 4][d & 3] + [single ? 1 : 0, 2, 4, 8][fcsFlag];
        this.#enter('frame-header-rest', rest);
        return;
      }
      case 'frame-header-rest':
        this.#frameHeader();
        return;
      case 'block-header': {
        const h = b[0] | (b[1] << 8) | (b[2] << 16);
        const last = (h & 1) === 1;
        const type = (h >> 1) & 3;
        const size = h >>> 3;
        if (type === 3) throw bundleError('BUNDLE_ERR_DECOMPRESS', `reserved block type at byte ${at - 3}`);
        if (size > BLOCK_MAX) throw bundleError('BUNDLE_ERR_DECOMPRESS', `block of ${size} bytes at byte ${at - 3} exceeds the 128 KiB maximum`);
        const next: State = last ? (this.#checksum ? 'checksum' : 'magic') : 'block-header';
        if (last) this.#frames++;
        // An RLE block stores one byte however long it is (RFC 8878 3.1.1.2.2).
        this.#skipThen(type === 1 ? 1 : size, next);
        return;
      }
      case 'checksum':
        this.#enter('magic');
        return;
      default:
        return;
    }
  }

  #frameHeader(): void {
    const d = this.#descriptor;
    const single = (d & 0x20) !== 0;
    const fcsFlag = d >> 6;
    const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag];
    const off = this.#need - fcsBytes;
    let size: number | undefined;
    if (fcsBytes === 1) size = this.#buf[off];
    else if (fcsBytes === 2) size = this.#buf.readUInt16LE(off) + 256; // RFC 8878 3.1.1.1.4
    else if (fcsBytes === 4) size = this.#buf.readUInt32LE(off);
    else if (fcsBytes === 8) size = Number(this.#buf.readBigUInt64LE(off));
    if (size !== undefined) this.declaredContentSize += size;
    this.#enter('block-header');
  }
}
