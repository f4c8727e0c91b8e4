/**
 * Sector bitmaps (MS-VHDX 2.4): 1 MiB blocks, one bit per logical sector (bit 0 of byte 0 is the
 * first sector of the chunk); 1 means "this file has the sector", 0 means "ask the parent".
 */
import type { BatGeometry } from './bat.js';

/** Bit index, within its chunk's bitmap block, of `sector` of payload block `block`. */
export function bitmapBitIndex(g: BatGeometry, block: number, sector: number): number {
  return (block % g.chunkRatio) * g.sectorsPerBlock + sector;
}

export function testBit(bitmap: Uint8Array, bit: number): boolean {
  return ((bitmap[bit >>> 3] ?? 0) & (1 << (bit & 7))) !== 0;
}

/** Sets bits [from, to); returns the byte range touched. */
export function setBits(bitmap: Uint8Array, from: number, to: number): [number, number] {
  for (let bit = from; bit < to; ) {
    if ((bit & 7) === 0 && bit + 8 <= to) {
      bitmap[bit >>> 3] = 0xff;
      bit += 8;
    } else {
      bitmap[bit >>> 3] = (bitmap[bit >>> 3] ?? 0) | (1 << (bit & 7));
      bit++;
    }
  }
  return [from >>> 3, (to + 7) >>> 3];
}

/** Length of the run of bits equal to bit `from`, stopping at `limit`. */
export function runLength(bitmap: Uint8Array, from: number, limit: number): number {
  const value = testBit(bitmap, from);
  let bit = from + 1;
  while (bit < limit) {
    if ((bit & 7) === 0 && bit + 8 <= limit) {
      const byte = bitmap[bit >>> 3] ?? 0;
      if (byte === (value ? 0xff : 0)) {
        bit += 8;
        continue;
      }
    }
    if (testBit(bitmap, bit) !== value) break;
    bit++;
  }
  return bit - from;
}
