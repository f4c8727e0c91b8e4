/**
 * Compacting a dynamic or differencing disk in place: blocks that add nothing (all zeros in a
 * dynamic disk; the same bytes as the parent in a differencing one) are dropped from the BAT,
 * then blocks are moved down into the holes and the file is truncated behind the last one. Each
 * move is copy, sync, repoint, sync, so a crash leaves either the old or the new place in use.
 */
import { cancelled } from '../../core/errors.js';
import type { OperationContext } from '../../core/progress.js';
import { batBytes } from './bat.js';
import { DYNAMIC_HEADER_SIZE } from './dynamic-header.js';
import { vhdError } from './errors.js';
import { FOOTER_SIZE } from './footer.js';
import { alignUp, SECTOR_SIZE } from './layout.js';
import { locatorExtent } from './parent-locator.js';
import { VhdFile } from './vhd-file.js';

export interface CompactResult {
  readonly blocksDropped: number;
  readonly blocksMoved: number;
  readonly fileSizeBefore: number;
  readonly fileSizeAfter: number;
}

/** Compacts the dynamic or differencing VHD at `path`. A fixed disk is refused. */
export async function compactVhd(path: string, ctx: OperationContext): Promise<CompactResult> {
  const file = await VhdFile.open(path, { readOnly: false });
  try {
    const g = file.geometry;
    if (!g) throw vhdError('vhd-bad-argument', `"${path}" is a fixed disk; only dynamic and differencing disks can be compacted.`);
    return await file.exclusive(async () => {
      await file.flushHeld();
      const { header, headerOffset, nextFree } = file.layout;
      const before = nextFree + FOOTER_SIZE;
      const span = g.bitmapSize + g.blockSize;
      const mine = Buffer.allocUnsafe(g.blockSize);
      const theirs = Buffer.allocUnsafe(g.blockSize);
      let dropped = 0;
      ctx.progress(0, 'Finding empty blocks');
      for (let block = 0; block < g.blockCount; block++) {
        if (ctx.signal.aborted) throw cancelled(`Compacting "${path}"`);
        if (file.blockFileOffset(block) === undefined) continue;
        const pos = block * g.blockSize;
        const n = Math.min(g.blockSize, file.virtualSize - pos);
        await file.readInto(mine.subarray(0, n), pos);
        theirs.fill(0, 0, n);
        const parent = file.parent;
        if (parent && pos < parent.virtualSize) await parent.readInto(theirs.subarray(0, Math.min(n, parent.virtualSize - pos)), pos);
        if (mine.compare(theirs, 0, n, 0, n) === 0) {
          file.setBlockFileOffset(block, undefined);
          dropped++;
        }
        ctx.progress((0.5 * (block + 1)) / g.blockCount, 'Finding empty blocks');
      }
      await file.flushHeld();

      // Move blocks down into the holes, lowest first; a move never overlaps its own source.
      let metadataEnd = Math.max(FOOTER_SIZE, headerOffset! + DYNAMIC_HEADER_SIZE, header!.tableOffset + batBytes(header!.maxTableEntries));
      for (const l of header!.locators) {
        if (l.platformCode === 0) continue;
        const e = locatorExtent(l);
        metadataEnd = Math.max(metadataEnd, e.offset + e.length);
      }
      const blocks: { block: number; offset: number }[] = [];
      for (let block = 0; block < g.blockCount; block++) {
        const offset = file.blockFileOffset(block);
        if (offset !== undefined) blocks.push({ block, offset });
      }
      blocks.sort((a, b) => a.offset - b.offset);
      let cursor = alignUp(metadataEnd, SECTOR_SIZE);
      let moved = 0;
      const raw = Buffer.allocUnsafe(span);
      for (const [i, b] of blocks.entries()) {
        if (ctx.signal.aborted) throw cancelled(`Compacting "${path}"`);
        if (b.offset >= cursor + span) {
          await file.readFileBytes(raw, b.offset);
          await file.writeFileBytes(raw, cursor);
          await file.flushHeld(); // the copy is durable before the BAT points at it
          file.setBlockFileOffset(b.block, cursor);
          await file.flushHeld();
          moved++;
          cursor += span;
        } else {
          cursor = Math.max(cursor, b.offset + span);
        }
        ctx.progress(0.5 + (0.5 * (i + 1)) / blocks.length, 'Moving blocks');
      }
      file.setDataEnd(cursor);
      await file.flushHeld();
      ctx.progress(1, 'Compacted');
      return { blocksDropped: dropped, blocksMoved: moved, fileSizeBefore: before, fileSizeAfter: cursor + FOOTER_SIZE };
    });
  } finally {
    await file.close();
  }
}
