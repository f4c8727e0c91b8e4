/**
 * Merging a differencing disk into its parent (Hyper-V's "Merge" in Edit Disk): every sector the
 * child holds is written into the parent, which then reads as the child did. The child is then
 * stale (its parent has changed under it) and is removed unless the caller asks to keep it.
 */
import { unlink } from 'node:fs/promises';
import { cancelled } from '../../core/errors.js';
import type { OperationContext } from '../../core/progress.js';
import { vhdError } from './errors.js';
import { SECTOR_SIZE } from './layout.js';
import { runLength, testBit } from './sector-bitmap.js';
import { VhdFile } from './vhd-file.js';

export interface MergeOptions {
  /** Delete the child after a successful merge (default true, as Hyper-V does). */
  readonly removeChild?: boolean;
}

/** Merges the differencing disk at `childPath` into its parent. Returns the parent's path. */
export async function mergeIntoParent(childPath: string, ctx: OperationContext, options: MergeOptions = {}): Promise<string> {
  // Resolve and validate the whole chain first (locators, unique id), read-only.
  let parentPath: string;
  {
    const probe = await VhdFile.open(childPath, { readOnly: true });
    try {
      if (probe.diskType !== 'differencing' || !probe.parent) {
        throw vhdError('vhd-bad-argument', `"${childPath}" is a ${probe.diskType} disk; only a differencing disk can be merged into a parent.`);
      }
      if (probe.virtualSize > probe.parent.virtualSize) {
        throw vhdError(
          'vhd-bad-argument',
          `"${childPath}" is larger (${probe.virtualSize} bytes) than its parent (${probe.parent.virtualSize} bytes); grow the parent first.`,
        );
      }
      parentPath = probe.parent.path;
    } finally {
      await probe.close();
    }
  }
  const child = await VhdFile.open(childPath, { readOnly: true, openParent: false });
  try {
    const parent = await VhdFile.open(parentPath, { readOnly: false });
    try {
      const g = child.geometry!;
      const sectors = g.blockSize / SECTOR_SIZE;
      const buf = Buffer.allocUnsafe(g.blockSize);
      ctx.progress(0, 'Merging');
      for (let block = 0; block < g.blockCount; block++) {
        if (ctx.signal.aborted) throw cancelled(`Merging "${childPath}"`);
        const offset = child.blockFileOffset(block);
        if (offset === undefined) continue;
        const bitmap = (await child.sectorBitmap(block))!;
        const base = block * g.blockSize;
        const limit = Math.min(sectors, (child.virtualSize - base) / SECTOR_SIZE);
        for (let s = 0; s < limit; ) {
          const run = Math.min(runLength(bitmap, s, limit), limit - s);
          if (testBit(bitmap, s)) {
            const view = buf.subarray(0, run * SECTOR_SIZE);
            await child.readFileBytes(view, offset + g.bitmapSize + s * SECTOR_SIZE);
            await parent.write(view, base + s * SECTOR_SIZE);
          }
          s += run;
        }
        ctx.progress((block + 1) / g.blockCount, 'Merging');
      }
      await parent.flush();
    } finally {
      await parent.close();
    }
  } finally {
    await child.close();
  }
  if (options.removeChild ?? true) await unlink(childPath);
  ctx.progress(1, 'Merged');
  return parentPath;
}
