/**
 * Streaming a VHDX (or a differencing chain) to a raw image, and flattening a chain into a new
 * standalone VHDX. Unallocated blocks are skipped and all-zero runs are left as holes, so the
 * output is sparse (the copying itself is file-io.ts's copyToRaw, shared with the VHD library).
 */
import { open as openFile, unlink } from 'node:fs/promises';
import { cancelled } from '../../core/errors.js';
import type { OperationContext } from '../../core/progress.js';
import { PAYLOAD_BLOCK_FULLY_PRESENT } from './bat.js';
import { createVhdx } from './create.js';
import { inFile } from './errors.js';
import { MiB } from './layout.js';
import { VhdxFile } from './vhdx-file.js';
import { copyToRaw, forNonZeroRuns, type Extent } from '../file-io.js';

/** Bytes per read when flattening. */
const CHUNK = 2 * MiB;

/** The blocks that may hold data, in order; a fully present block is read straight from the file. */
function* extents(file: VhdxFile): Generator<Extent> {
  const { blockSize, dataBlockCount } = file.geometry;
  const size = file.virtualSize;
  for (let block = 0; block < dataBlockCount; block++) {
    if (!file.blockMayHoldData(block)) continue;
    const position = block * blockSize;
    const length = Math.min(blockSize, size - position);
    const m = file.blockMapping(block);
    if (m.state === PAYLOAD_BLOCK_FULLY_PRESENT) {
      const { fileOffset } = m;
      yield { position, length, read: (buf, at) => file.readFileBytes(buf, fileOffset + at) };
    } else {
      yield { position, length, read: (buf, at) => file.readInto(buf, position + at) };
    }
  }
}

export interface ConvertOptions {
  /** Open options for the source when given a path (parents are always opened read-only). */
  readonly tolerateEmptyLog?: boolean;
  /** fdatasync the output before returning (default false, like `qemu-img convert`). */
  readonly sync?: boolean;
}

/**
 * Writes the virtual disk of `src` (a path or an open file; a differencing disk reads through
 * its chain) to the raw image `dst`, sparse. Reports progress and honours ctx.signal; on failure
 * or cancellation the partial output is removed.
 */
export async function convertToRaw(src: string | VhdxFile, dst: string, ctx: OperationContext, options: ConvertOptions = {}): Promise<void> {
  const file =
    typeof src === 'string' ? await VhdxFile.open(src, { readOnly: true, tolerateEmptyLog: options.tolerateEmptyLog ?? false }) : src;
  try {
    const out = await openFile(dst, 'w').catch((error: unknown) => {
      throw inFile(dst, error);
    });
    try {
      await out.truncate(file.virtualSize);
      await copyToRaw(out, file.virtualSize, extents(file), ctx, { what: `Converting "${file.path}" to raw` });
      if (options.sync) await out.datasync();
      await out.close();
      ctx.progress(1, 'Converted to raw');
    } catch (error) {
      await out.close().catch(() => undefined);
      await unlink(dst).catch(() => undefined);
      throw error;
    }
  } finally {
    if (typeof src === 'string') await file.close();
  }
}

export interface FlattenOptions {
  /** Block size of the new file (default: the top file's). */
  readonly blockSize?: number;
  readonly overwrite?: boolean;
}

/**
 * Writes the merged view of the chain ending at `topPath` into a new dynamic VHDX at `dstPath`,
 * which has no parent. All-zero blocks stay unallocated.
 */
export async function flattenChain(topPath: string, dstPath: string, ctx: OperationContext, options: FlattenOptions = {}): Promise<void> {
  const top = await VhdxFile.open(topPath, { readOnly: true });
  let created = false;
  try {
    await createVhdx(dstPath, {
      type: 'dynamic',
      size: top.virtualSize,
      blockSize: options.blockSize ?? top.info.blockSize,
      logicalSectorSize: top.info.logicalSectorSize,
      physicalSectorSize: top.info.physicalSectorSize,
      overwrite: options.overwrite ?? false,
    });
    created = true;
    const out = await VhdxFile.open(dstPath, { readOnly: false });
    try {
      const size = top.virtualSize;
      const buf = Buffer.allocUnsafe(CHUNK);
      let sinceFlush = 0;
      for (let pos = 0; pos < size; pos += CHUNK) {
        if (ctx.signal.aborted) throw cancelled(`Flattening "${topPath}"`);
        const n = Math.min(CHUNK, size - pos);
        const { blockSize } = top.geometry;
        let mayHold = false;
        for (let b = Math.floor(pos / blockSize); b * blockSize < pos + n; b++) mayHold ||= top.blockMayHoldData(b);
        if (!mayHold) continue;
        const view = buf.subarray(0, n);
        await top.readInto(view, pos);
        await forNonZeroRuns(view, (from, to) => out.write(view.subarray(from, to), pos + from));
        if ((sinceFlush += n) >= 256 * MiB) {
          await out.flush();
          sinceFlush = 0;
        }
        ctx.progress((pos + n) / size, 'Flattening');
      }
      await out.close();
    } catch (error) {
      await out.close().catch(() => undefined);
      throw error;
    }
    ctx.progress(1, 'Flattened');
  } catch (error) {
    if (created) await unlink(dstPath).catch(() => undefined);
    throw error;
  } finally {
    await top.close();
  }
}
