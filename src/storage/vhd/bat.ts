/**
 * The block allocation table (spec "Block Allocation Table and Data Blocks"): Max Table Entries
 * big-endian u32s at the header's table offset, padded to a sector. Each is the sector number at
 * which block i (its sector bitmap, then its data) starts, or 0xFFFFFFFF when the block is not
 * allocated.
 */
import { quote, vhdError } from './errors.js';
import { alignUp, SECTOR_SIZE } from './layout.js';

export const BAT_ENTRY_SIZE = 4;
export const BAT_UNUSED = 0xffff_ffff;

/** A span of the file that holds metadata, which no block may overlap. */
export interface OccupiedRange {
  readonly name: string;
  readonly offset: number;
  readonly length: number;
}

export interface BatGeometry {
  readonly blockSize: number;
  /** Bytes of sector bitmap in front of each block's data. */
  readonly bitmapSize: number;
  /** Blocks the virtual size needs (entries past it are ignored). */
  readonly blockCount: number;
}

/** Bytes the BAT occupies on disk for `entries` entries. */
export function batBytes(entries: number): number {
  return alignUp(entries * BAT_ENTRY_SIZE, SECTOR_SIZE);
}

/** The file offset of block `block`'s bitmap, or undefined when it is not allocated. */
export function blockOffset(bat: Buffer, block: number): number | undefined {
  const sector = bat.readUInt32BE(block * BAT_ENTRY_SIZE);
  return sector === BAT_UNUSED ? undefined : sector * SECTOR_SIZE;
}

export function setBlockOffset(bat: Buffer, block: number, offset: number | undefined): void {
  bat.writeUInt32BE(offset === undefined ? BAT_UNUSED : offset / SECTOR_SIZE, block * BAT_ENTRY_SIZE);
}

/**
 * Checks every used entry: its block (bitmap + data) lies between the metadata and `limit` (the
 * footer's offset), overlaps no metadata range and no other block. Throws vhd-bat-out-of-range
 * or vhd-bat-overlap quoting the entry. Returns the end of the last block (0 if none).
 */
export function validateBat(bat: Buffer, g: BatGeometry, limit: number, occupied: readonly OccupiedRange[]): number {
  const span = g.bitmapSize + g.blockSize;
  const used: { block: number; start: number }[] = [];
  for (let block = 0; block < g.blockCount; block++) {
    const start = blockOffset(bat, block);
    if (start === undefined) continue;
    if (start + span > limit) {
      throw vhdError(
        'vhd-bat-out-of-range',
        `BAT entry ${block} puts its block at ${quote(start)}, ending at ${quote(start + span)}, past the data area's end at ${quote(limit)}.`,
        { block, entry: start / SECTOR_SIZE, offset: start, limit },
      );
    }
    for (const r of occupied) {
      if (start < r.offset + r.length && r.offset < start + span) {
        throw vhdError('vhd-bat-out-of-range', `BAT entry ${block} puts its block at ${quote(start)}, inside the ${r.name} at ${quote(r.offset)}.`, {
          block,
          entry: start / SECTOR_SIZE,
          offset: start,
          region: r.name,
        });
      }
    }
    used.push({ block, start });
  }
  used.sort((a, b) => a.start - b.start);
  for (let i = 1; i < used.length; i++) {
    const prev = used[i - 1]!;
    const cur = used[i]!;
    if (cur.start < prev.start + span) {
      throw vhdError(
        'vhd-bat-overlap',
        `BAT entries ${prev.block} and ${cur.block} put their blocks at ${quote(prev.start)} and ${quote(cur.start)}, which overlap (each is ${quote(span)} bytes).`,
        { blocks: [prev.block, cur.block], offsets: [prev.start, cur.start] },
      );
    }
  }
  const last = used[used.length - 1];
  return last ? last.start + span : 0;
}
