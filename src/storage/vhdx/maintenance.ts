/**
 * Operations on a whole file: merging a differencing disk into its parent, resizing, and
 * compacting (all-zero blocks given back, the file shortened by moving blocks down). Each keeps
 * the crash ordering of the write path: data is durable before the BAT points at it.
 */
import { cancelled } from '../../core/errors.js';
import type { OperationContext } from '../../core/progress.js';
import {
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PAYLOAD_BLOCK_ZERO,
  SB_BLOCK_PRESENT,
} from './bat.js';
import { quote, vhdxError } from './errors.js';
import { alignUp, ALIGNMENT, HEADER_SECTION_SIZE, LOG_SECTOR_SIZE, MAX_VIRTUAL_DISK_SIZE, MiB, SECTOR_BITMAP_BLOCK_SIZE } from './layout.js';
import { VIRTUAL_DISK_SIZE_GUID, parseMetadataTable } from './metadata.js';
import { VhdxFile } from './vhdx-file.js';

const CHUNK = 4 * MiB;
const ZEROS = Buffer.alloc(CHUNK);

function isZero(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i += CHUNK) {
    const n = Math.min(CHUNK, buf.length - i);
    if (buf.compare(ZEROS, 0, n, i, i + n) !== 0) return false;
  }
  return true;
}

function checkAbort(ctx: OperationContext, what: string): void {
  if (ctx.signal.aborted) throw cancelled(what);
}

/**
 * Writes everything the differencing disk at `childPath` holds into its parent (opened
 * writable). Afterwards the parent's DataWriteGuid has changed, so the child — and any other
 * child of that parent — no longer opens: delete it. Returns the parent's path.
 */
export async function mergeIntoParent(childPath: string, ctx: OperationContext): Promise<string> {
  const probe = await VhdxFile.open(childPath, { readOnly: true });
  const parentPath = probe.parent?.path;
  await probe.close();
  if (parentPath === undefined) {
    throw vhdxError('vhdx-bad-argument', `"${childPath}" is not a differencing disk; there is nothing to merge into.`);
  }
  const child = await VhdxFile.open(childPath, { readOnly: true, openParent: false });
  try {
    const parent = await VhdxFile.open(parentPath, { readOnly: false });
    try {
      const { blockSize, dataBlockCount } = child.geometry;
      const buf = Buffer.allocUnsafe(CHUNK);
      for (let block = 0; block < dataBlockCount; block++) {
        checkAbort(ctx, `Merging "${childPath}"`);
        for (const range of await child.ownedRanges(block)) {
          for (let off = range.start; off < range.end; off += CHUNK) {
            const position = block * blockSize + off;
            const n = Math.min(CHUNK, range.end - off, parent.virtualSize - position);
            if (n <= 0) break;
            if (range.kind === 'data') {
              await child.readFileBytes(buf.subarray(0, n), range.fileOffset + (off - range.start));
              await parent.write(buf.subarray(0, n), position);
            } else if (parent.blockMayHoldDataAt(position, n)) {
              await parent.write(ZEROS.subarray(0, n), position);
            }
          }
        }
        ctx.progress((block + 1) / dataBlockCount, 'Merging into parent');
      }
      await parent.close();
    } catch (error) {
      await parent.close().catch(() => undefined);
      throw error;
    }
  } finally {
    await child.close();
  }
  return parentPath;
}

/**
 * Changes the virtual size of the disk at `path`. Growing past what the BAT region holds moves
 * the BAT to the end of the file; shrinking is allowed only over space that reads as zeros
 * (`vhdx-shrink-over-data` otherwise).
 */
export async function resizeVhdx(path: string, newSize: number, ctx: OperationContext): Promise<void> {
  const file = await VhdxFile.open(path, { readOnly: false });
  try {
    const { logicalSectorSize, blockSize } = file.info;
    const oldSize = file.virtualSize;
    if (!Number.isSafeInteger(newSize) || newSize <= 0 || newSize > MAX_VIRTUAL_DISK_SIZE || newSize % logicalSectorSize !== 0) {
      throw vhdxError('vhdx-bad-argument', `The new size must be a positive multiple of ${logicalSectorSize} bytes up to 64 TiB: current value is ${newSize}.`);
    }
    if (newSize === oldSize) return;
    if (newSize < oldSize) {
      for (let pos = newSize; pos < oldSize; pos += CHUNK) {
        checkAbort(ctx, `Resizing "${path}"`);
        const data = await file.read(pos, Math.min(CHUNK, oldSize - pos));
        if (!isZero(data)) {
          let at = 0;
          while (data[at] === 0) at++;
          throw vhdxError(
            'vhdx-shrink-over-data',
            `Shrinking "${path}" to ${quote(newSize)} bytes would drop data: byte ${quote(pos + at)} is not zero.`,
            { newSize, firstDataAt: pos + at },
            'Shrink the partition and file system inside the disk first, then compact.',
          );
        }
      }
    }
    const { regions } = file.layout;
    const table = await readRegion(file, regions.metadata.fileOffset, regions.metadata.length);
    const entry = parseMetadataTable(table).find((e) => e.itemId === VIRTUAL_DISK_SIZE_GUID && !e.isUser);
    if (!entry) throw vhdxError('vhdx-missing-metadata', 'The Virtual Disk Size metadata item is missing.');
    const at = regions.metadata.fileOffset + entry.offset;
    const sectorStart = at - (at % LOG_SECTOR_SIZE);
    if (at + 8 > sectorStart + LOG_SECTOR_SIZE) {
      throw vhdxError('vhdx-bad-argument', 'The Virtual Disk Size item straddles a 4 KiB boundary; resizing such a file is not supported.');
    }
    const sector = await readRegion(file, sectorStart, LOG_SECTOR_SIZE);
    sector.writeBigUInt64LE(BigInt(newSize), at - sectorStart);
    await file.replaceVirtualSize(newSize, { fileOffset: sectorStart, data: sector });
    if (newSize > oldSize && oldSize % blockSize !== 0) {
      // The old last block's bytes past the old end must read as zeros now that they are visible.
      const block = Math.floor(oldSize / blockSize);
      const state = file.blockMapping(block).state;
      if (state === PAYLOAD_BLOCK_FULLY_PRESENT || state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
        const end = Math.min((block + 1) * blockSize, newSize);
        for (let pos = oldSize; pos < end; pos += CHUNK) await file.write(ZEROS.subarray(0, Math.min(CHUNK, end - pos)), pos);
      }
    }
    if (newSize > oldSize && file.info.diskType === 'fixed') {
      // A fixed disk stays fully provisioned (LeaveBlocksAllocated, 2.6.2.1).
      for (let block = Math.floor(oldSize / blockSize); block < file.geometry.dataBlockCount; block++) {
        checkAbort(ctx, `Resizing "${path}"`);
        await file.preallocateBlock(block);
      }
    }
    ctx.progress(1, 'Resized');
    await file.close();
  } catch (error) {
    await file.close().catch(() => undefined);
    throw error;
  }
}

async function readRegion(file: VhdxFile, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  await file.readFileBytes(buf, position);
  return buf;
}

export interface CompactResult {
  /** Blocks found all-zero and given back. */
  readonly blocksFreed: number;
  readonly fileSizeBefore: number;
  readonly fileSizeAfter: number;
}

/**
 * Gives back every fully present block that holds only zeros (NOT_PRESENT, or ZERO in a
 * differencing disk so the parent stays hidden), moves the last blocks into the holes, and
 * shortens the file. What the disk reads does not change, so DataWriteGuid — and the linkage of
 * any differencing child — is kept. Fixed disks are refused.
 */
export async function compactVhdx(path: string, ctx: OperationContext): Promise<CompactResult> {
  const file = await VhdxFile.open(path, { readOnly: false });
  try {
    const info = file.info;
    if (info.diskType === 'fixed') {
      throw vhdxError('vhdx-bad-argument', `"${path}" is a fixed disk (LeaveBlocksAllocated); it cannot give space back.`, undefined, 'Convert it to a dynamic disk first.');
    }
    const g = file.geometry;
    const fileSizeBefore = file.layout.fileEnd;
    const freedState = info.diskType === 'differencing' ? PAYLOAD_BLOCK_ZERO : PAYLOAD_BLOCK_NOT_PRESENT;
    const buf = Buffer.allocUnsafe(g.blockSize);
    let blocksFreed = 0;
    for (let block = 0; block < g.dataBlockCount; block++) {
      checkAbort(ctx, `Compacting "${path}"`);
      const m = file.blockMapping(block);
      if (m.state !== PAYLOAD_BLOCK_FULLY_PRESENT) continue;
      await file.readFileBytes(buf, m.fileOffset);
      if (!isZero(buf)) continue;
      await file.setBlockMapping(block, { state: freedState, fileOffset: 0 }, { userVisible: false });
      blocksFreed++;
      ctx.progress((0.5 * (block + 1)) / g.dataBlockCount, 'Finding zero blocks');
    }
    await file.flush();

    // Everything that occupies the file: the log, the regions, payload and sector bitmap blocks.
    // Only payload blocks (those with `block`) are moved.
    const { header, regions } = file.layout;
    const used: { offset: number; length: number; block?: number }[] = [];
    if (header.logLength > 0) used.push({ offset: header.logOffset, length: header.logLength });
    for (const r of regions.entries) if (r.length > 0) used.push({ offset: r.fileOffset, length: r.length });
    for (let block = 0; block < g.dataBlockCount; block++) {
      const m = file.blockMapping(block);
      if (m.state === PAYLOAD_BLOCK_FULLY_PRESENT || m.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) used.push({ offset: m.fileOffset, length: g.blockSize, block });
    }
    for (let chunk = 0; chunk < g.bitmapBlockCount && g.hasParent; chunk++) {
      const entry = file.bitmapMapping(chunk);
      if (entry.state === SB_BLOCK_PRESENT) used.push({ offset: entry.fileOffset, length: SECTOR_BITMAP_BLOCK_SIZE });
    }
    used.sort((a, b) => a.offset - b.offset);
    // Move payload blocks from the end into the lowest gap that fits, while that lowers the end.
    const gaps = (): { offset: number; length: number }[] => {
      const out: { offset: number; length: number }[] = [];
      let cursor = HEADER_SECTION_SIZE;
      for (const u of used) {
        if (u.offset > cursor) out.push({ offset: cursor, length: u.offset - cursor });
        cursor = Math.max(cursor, u.offset + u.length);
      }
      return out;
    };
    const moveBuf = Buffer.allocUnsafe(g.blockSize);
    for (;;) {
      checkAbort(ctx, `Compacting "${path}"`);
      const last = used[used.length - 1];
      if (!last || last.block === undefined) break;
      const gap = gaps().find((h) => h.length >= last.length && h.offset + last.length <= last.offset);
      if (!gap) break;
      const m = file.blockMapping(last.block);
      await file.readFileBytes(moveBuf, m.fileOffset);
      await file.writeFileBytes(moveBuf, gap.offset);
      await file.setBlockMapping(last.block, { state: m.state, fileOffset: gap.offset }, { userVisible: false });
      await file.flush(); // data is synced before the BAT entry moves
      used.pop();
      used.push({ offset: gap.offset, length: last.length, block: last.block });
      used.sort((a, b) => a.offset - b.offset);
    }
    const end = alignUp(Math.max(HEADER_SECTION_SIZE, ...used.map((u) => u.offset + u.length)), ALIGNMENT);
    if (end < file.layout.fileEnd) await file.truncateFile(end);
    ctx.progress(1, 'Compacted');
    await file.close();
    return { blocksFreed, fileSizeBefore, fileSizeAfter: end < fileSizeBefore ? end : fileSizeBefore };
  } catch (error) {
    await file.close().catch(() => undefined);
    throw error;
  }
}
