/**
 * The block allocation table (MS-VHDX 2.5): one u64 per payload block and per sector bitmap block,
 * interleaved so each chunk's `chunkRatio` payload entries are followed by its sector bitmap
 * entry. Bits 0-2 hold the state, bits 20-63 the file offset in MiB.
 */
import { vhdxError, quote } from './errors.js';
import { HEADER_SECTION_SIZE, MiB, SECTOR_BITMAP_BLOCK_SIZE, SECTORS_PER_BITMAP_BLOCK } from './layout.js';
import type { VhdxMetadata } from './metadata.js';

export const BAT_ENTRY_SIZE = 8;

/** Payload block states (2.5.1.1); 4 and 5 are reserved. */
export const PAYLOAD_BLOCK_NOT_PRESENT = 0;
export const PAYLOAD_BLOCK_UNDEFINED = 1;
export const PAYLOAD_BLOCK_ZERO = 2;
export const PAYLOAD_BLOCK_UNMAPPED = 3;
export const PAYLOAD_BLOCK_FULLY_PRESENT = 6;
export const PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7;
/** Sector bitmap block states (2.5.1.2). */
export const SB_BLOCK_NOT_PRESENT = 0;
export const SB_BLOCK_PRESENT = 6;

const STATE_MASK = 0x7;
const OFFSET_SHIFT = 20;
/** Offsets above 2^53 bytes cannot be a real file position; treat them as out of range. */
const MAX_OFFSET_MB = 2 ** 33;

export interface BatGeometry {
  readonly blockSize: number;
  readonly logicalSectorSize: number;
  readonly virtualDiskSize: number;
  readonly hasParent: boolean;
  /** Payload blocks per sector bitmap block: 2^23 * logical sector size / block size. */
  readonly chunkRatio: number;
  readonly dataBlockCount: number;
  readonly bitmapBlockCount: number;
  /** Entries the BAT must hold (2.5). */
  readonly entryCount: number;
  readonly sectorsPerBlock: number;
}

export function batGeometry(meta: Pick<VhdxMetadata, 'blockSize' | 'logicalSectorSize' | 'virtualDiskSize' | 'hasParent'>): BatGeometry {
  const chunkRatio = (SECTORS_PER_BITMAP_BLOCK * meta.logicalSectorSize) / meta.blockSize;
  const dataBlockCount = Math.ceil(meta.virtualDiskSize / meta.blockSize);
  const bitmapBlockCount = Math.ceil(dataBlockCount / chunkRatio);
  const entryCount = meta.hasParent
    ? bitmapBlockCount * (chunkRatio + 1)
    : dataBlockCount + Math.floor((dataBlockCount - 1) / chunkRatio);
  return {
    blockSize: meta.blockSize,
    logicalSectorSize: meta.logicalSectorSize,
    virtualDiskSize: meta.virtualDiskSize,
    hasParent: meta.hasParent,
    chunkRatio,
    dataBlockCount,
    bitmapBlockCount,
    entryCount,
    sectorsPerBlock: meta.blockSize / meta.logicalSectorSize,
  };
}

export function payloadEntryIndex(g: BatGeometry, block: number): number {
  return block + Math.floor(block / g.chunkRatio);
}

export function bitmapEntryIndex(g: BatGeometry, chunk: number): number {
  return chunk * (g.chunkRatio + 1) + g.chunkRatio;
}

export interface BatEntry {
  readonly state: number;
  /** File offset in bytes (FileOffsetMB * 1 MiB). */
  readonly fileOffset: number;
}

export function readBatEntry(bat: Buffer, index: number): BatEntry {
  const low = bat.readUInt32LE(index * BAT_ENTRY_SIZE);
  const high = bat.readUInt32LE(index * BAT_ENTRY_SIZE + 4);
  const offsetMb = (low >>> OFFSET_SHIFT) + high * 4096;
  return { state: low & STATE_MASK, fileOffset: offsetMb * MiB };
}

export function writeBatEntry(bat: Buffer, index: number, entry: BatEntry): void {
  const offsetMb = entry.fileOffset / MiB;
  const low = ((offsetMb % 4096) << OFFSET_SHIFT) | entry.state;
  bat.writeUInt32LE(low >>> 0, index * BAT_ENTRY_SIZE);
  bat.writeUInt32LE(Math.floor(offsetMb / 4096), index * BAT_ENTRY_SIZE + 4);
}

export interface OccupiedRange {
  readonly name: string;
  readonly offset: number;
  readonly length: number;
}

/**
 * Checks every entry the geometry needs (2.5.1): known states only, states valid for this disk
 * type, allocated blocks inside the file past the header section, and no two allocations (or an
 * allocation and a region or the log) sharing bytes. Sector bitmap entries of a disk without a
 * parent are unused and not checked (old QEMU wrote garbage there).
 */
export function validateBat(bat: Buffer, g: BatGeometry, fileSize: number, occupied: readonly OccupiedRange[]): void {
  if (bat.length < g.entryCount * BAT_ENTRY_SIZE) {
    throw vhdxError(
      'vhdx-bat-too-small',
      `The BAT region holds ${Math.floor(bat.length / BAT_ENTRY_SIZE)} entries; a ${quote(g.virtualDiskSize)}-byte disk with ${quote(g.blockSize)}-byte blocks needs ${g.entryCount}.`,
      { entries: Math.floor(bat.length / BAT_ENTRY_SIZE), needed: g.entryCount },
    );
  }
  const starts: number[] = [];
  const lengths: number[] = [];
  const period = g.chunkRatio + 1;
  for (let i = 0; i < g.entryCount; i++) {
    const isBitmap = i % period === g.chunkRatio;
    const low = bat.readUInt32LE(i * BAT_ENTRY_SIZE);
    const state = low & STATE_MASK;
    if (isBitmap) {
      if (!g.hasParent) continue;
      if (state !== SB_BLOCK_NOT_PRESENT && state !== SB_BLOCK_PRESENT) {
        throw vhdxError('vhdx-bad-bat-entry', `BAT entry ${i} (sector bitmap of chunk ${Math.floor(i / period)}) has reserved state ${state}.`, {
          index: i,
          state,
        });
      }
      if (state !== SB_BLOCK_PRESENT) continue;
    } else {
      if (state === 4 || state === 5) {
        throw vhdxError('vhdx-bad-bat-entry', `BAT entry ${i} has reserved payload state ${state}.`, { index: i, state });
      }
      if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT && !g.hasParent) {
        throw vhdxError(
          'vhdx-bad-bat-entry',
          `BAT entry ${i} is PARTIALLY_PRESENT, a state only differencing disks may use.`,
          { index: i, state },
        );
      }
      if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
        const sb = readBatEntry(bat, Math.floor(i / period) * period + g.chunkRatio);
        if (sb.state !== SB_BLOCK_PRESENT) {
          throw vhdxError(
            'vhdx-bad-bat-entry',
            `BAT entry ${i} is PARTIALLY_PRESENT but its chunk's sector bitmap block is not present.`,
            { index: i },
          );
        }
      }
      if (state !== PAYLOAD_BLOCK_FULLY_PRESENT && state !== PAYLOAD_BLOCK_PARTIALLY_PRESENT) continue;
    }
    const high = bat.readUInt32LE(i * BAT_ENTRY_SIZE + 4);
    const offsetMb = (low >>> OFFSET_SHIFT) + high * 4096;
    const length = isBitmap ? SECTOR_BITMAP_BLOCK_SIZE : g.blockSize;
    const offset = offsetMb * MiB;
    if (offsetMb >= MAX_OFFSET_MB || offset < HEADER_SECTION_SIZE || offset + length > fileSize) {
      throw vhdxError(
        'vhdx-bat-out-of-range',
        `BAT entry ${i} places a ${isBitmap ? 'sector bitmap' : 'payload'} block at ${quote(offset)}, outside the file's data area (1 MiB to ${quote(fileSize)}).`,
        { index: i, fileOffset: offset, fileSize },
      );
    }
    starts.push(offset);
    lengths.push(length);
  }
  const order = starts.map((_, i) => i).sort((x, y) => starts[x]! - starts[y]!);
  for (let k = 1; k < order.length; k++) {
    const prev = order[k - 1]!;
    const next = order[k]!;
    if (starts[prev]! + lengths[prev]! > starts[next]!) {
      throw vhdxError('vhdx-bat-overlap', `Two BAT entries place blocks that overlap at file offset ${quote(starts[next]!)}.`, {
        fileOffset: starts[next],
      });
    }
  }
  for (const range of occupied) {
    // binary search for the first block ending after range.offset
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const i = order[mid]!;
      if (starts[i]! + lengths[i]! <= range.offset) lo = mid + 1;
      else hi = mid;
    }
    const i = order[lo];
    if (i !== undefined && starts[i]! < range.offset + range.length) {
      throw vhdxError(
        'vhdx-bat-overlap',
        `A block at file offset ${quote(starts[i]!)} overlaps the ${range.name} (${quote(range.offset)}+${quote(range.length)}).`,
        { fileOffset: starts[i], structure: range.name },
      );
    }
  }
}
