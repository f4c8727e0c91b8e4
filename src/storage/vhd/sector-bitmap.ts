/**
 * The sector bitmap at the start of every block of a dynamic or differencing disk (spec "Block
 * Allocation Table and Data Blocks"): one bit per 512-byte sector of the block, most significant
 * bit first (bit 7 of byte 0 is sector 0), padded to a whole sector. In a differencing disk a set
 * bit means "this file has the sector", a clear one "read the parent". Dynamic disks keep it all
 * ones; readers (QEMU among them) ignore it there.
 */
import { alignUp, SECTOR_SIZE } from './layout.js';

/** Bytes of the bitmap in front of each block: 512 for the default 2 MiB block. */
export function bitmapSize(blockSize: number): number {
  return alignUp(Math.ceil(blockSize / SECTOR_SIZE / 8), SECTOR_SIZE);
}

export function testBit(bitmap: Uint8Array, sector: number): boolean {
  return ((bitmap[sector >>> 3] ?? 0) & (0x80 >>> (sector & 7))) !== 0;
}

/** Sets the bits of sectors [from, to). */
export function setBits(bitmap: Uint8Array, from: number, to: number): void {
  for (let s = from; s < to; ) {
    if ((s & 7) === 0 && s + 8 <= to) {
      bitmap[s >>> 3] = 0xff;
      s += 8;
    } else {
      bitmap[s >>> 3] = (bitmap[s >>> 3] ?? 0) | (0x80 >>> (s & 7));
      s++;
    }
  }
}

/** Length of the run of sectors whose bit equals that of `from`, stopping at `limit`. */
export function runLength(bitmap: Uint8Array, from: number, limit: number): number {
  const value = testBit(bitmap, from);
  const full = value ? 0xff : 0;
  let s = from + 1;
  while (s < limit) {
    if ((s & 7) === 0 && s + 8 <= limit && bitmap[s >>> 3] === full) {
      s += 8;
      continue;
    }
    if (testBit(bitmap, s) !== value) break;
    s++;
  }
  return s - from;
}

/** Whether any of sectors [from, to) is set. */
export function anySet(bitmap: Uint8Array, from: number, to: number): boolean {
  return from < to && (testBit(bitmap, from) || runLength(bitmap, from, to) < to - from);
}
