/**
 * Streaming a VHDX (or a differencing chain) to a raw image, and flattening a chain into a new
 * standalone VHDX. Unallocated blocks are skipped and all-zero runs are left as holes, so the
 * output is sparse (the copying itself is file-io.ts's copyToRaw, shared with the VHD library).
 */
import { unlink } from 'node:fs/promises';
import type { OperationContext } from '../../core/progress.js';
import { PAYLOAD_BLOCK_FULLY_PRESENT } from './bat.js';
import { createVhdx } from './create.js';
import { inFile } from './errors.js';
import { MiB } from './layout.js';
import { VhdxFile } from './vhdx-file.js';
import { copyNonZero, writeRawImage, ZERO_GRAIN, type Extent } from '../file-io.js';

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
    const what = `Converting "${file.path}" to raw`;
    await writeRawImage(dst, file.virtualSize, extents(file), ctx, { what, sync: options.sync === true, inFile });
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
      await copyNonZero(top, (data, position) => out.write(data, position), ctx, {
        step: CHUNK,
        grain: ZERO_GRAIN,
        what: `Flattening "${topPath}"`,
        message: 'Flattening',
        checkpoint: { bytes: 256 * MiB, run: () => out.flush() },
      });
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
