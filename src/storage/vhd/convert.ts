/**
 * Streaming a VHD (or a differencing chain) to a raw image and a raw image to a VHD, and
 * flattening a chain into a new standalone VHD. Unallocated blocks are skipped and all-zero runs
 * left as holes, so raw output is sparse (the copying itself is file-io.ts's copyToRaw, shared
 * with the VHDX library).
 */
import { open as openFile, unlink } from 'node:fs/promises';
import type { OperationContext } from '../../core/progress.js';
import { createVhd, DEFAULT_BLOCK_SIZE } from './create.js';
import { inFile, vhdError } from './errors.js';
import { MiB, SECTOR_SIZE } from './layout.js';
import { VhdFile } from './vhd-file.js';
import { copyNonZero, readInto, writeRawImage, type Extent } from '../file-io.js';

/** Bytes per step when converting from raw or flattening. */
const CHUNK = 8 * MiB;

/**
 * The parts of the disk that may hold data, in order: a fixed disk whole, else each block that
 * may hold data. A dynamic disk's allocated block is read straight from the file (its data
 * follows its sector bitmap); a differencing disk's blocks read through the chain.
 */
function* extents(file: VhdFile): Generator<Extent> {
  const size = file.virtualSize;
  const g = file.geometry;
  if (!g) {
    yield { position: 0, length: size, read: (buf, at) => file.readFileBytes(buf, at) };
    return;
  }
  const differencing = file.diskType === 'differencing';
  for (let block = 0; block < g.blockCount; block++) {
    if (!file.blockMayHoldData(block)) continue;
    const position = block * g.blockSize;
    const length = Math.min(g.blockSize, size - position);
    const offset = file.blockFileOffset(block);
    if (!differencing && offset !== undefined) {
      const data = offset + g.bitmapSize;
      yield { position, length, read: (buf, at) => file.readFileBytes(buf, data + at) };
    } else {
      yield { position, length, read: (buf, at) => file.readInto(buf, position + at) };
    }
  }
}

export interface ConvertOptions {
  /** fdatasync the output before returning (default false, like `qemu-img convert`). */
  readonly sync?: boolean;
}

/**
 * Writes the virtual disk of `src` (a path or an open file; a differencing disk reads through
 * its chain) to the raw image `dst`, sparse. Reports progress and honours ctx.signal; on failure
 * or cancellation the partial output is removed.
 */
export async function convertToRaw(src: string | VhdFile, dst: string, ctx: OperationContext, options: ConvertOptions = {}): Promise<void> {
  const file = typeof src === 'string' ? await VhdFile.open(src, { readOnly: true }) : src;
  try {
    const what = `Converting "${file.path}" to raw`;
    await writeRawImage(dst, file.virtualSize, extents(file), ctx, { what, sync: options.sync === true, inFile });
  } finally {
    if (typeof src === 'string') await file.close();
  }
}

export interface ConvertFromRawOptions {
  /** Default 'dynamic'. */
  readonly type?: 'fixed' | 'dynamic';
  readonly blockSize?: number;
  readonly creator?: string;
  readonly overwrite?: boolean;
}

/**
 * Writes the raw image `src` into a new VHD at `dst`. A raw size that is not a multiple of 512
 * is padded with zeros. All-zero blocks of a dynamic disk stay unallocated. On failure or
 * cancellation the partial output is removed.
 */
export async function convertFromRaw(src: string, dst: string, ctx: OperationContext, options: ConvertFromRawOptions = {}): Promise<void> {
  const input = await openFile(src, 'r').catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw vhdError('vhd-not-found', `No file exists at "${src}".`, { path: src });
    throw inFile(src, error);
  });
  let created = false;
  try {
    const rawSize = (await input.stat()).size;
    const size = Math.ceil(rawSize / SECTOR_SIZE) * SECTOR_SIZE;
    await createVhd(dst, {
      type: options.type ?? 'dynamic',
      size,
      ...(options.blockSize !== undefined ? { blockSize: options.blockSize } : {}),
      ...(options.creator !== undefined ? { creator: options.creator } : {}),
      overwrite: options.overwrite ?? false,
    });
    created = true;
    const out = await VhdFile.open(dst, { readOnly: false });
    try {
      // Whole blocks per write, so a dynamic disk allocates only blocks with data. Past the raw
      // file's end (padding to a sector) reads as zeros.
      const grain = out.geometry?.blockSize ?? 2 * MiB;
      const raw = { virtualSize: size, readInto: (buf: Buffer, position: number) => readInto(input, buf, position) };
      ctx.progress(0, 'Converting from raw');
      await copyNonZero(raw, (data, position) => out.write(data, position), ctx, {
        step: Math.max(grain, Math.floor(CHUNK / grain) * grain),
        grain,
        what: `Converting "${src}" to VHD`,
        message: 'Converting from raw',
      });
      await out.close();
    } catch (error) {
      await out.close().catch(() => undefined);
      throw error;
    }
    ctx.progress(1, 'Converted from raw');
  } catch (error) {
    if (created) await unlink(dst).catch(() => undefined);
    throw error;
  } finally {
    await input.close();
  }
}

export interface FlattenOptions {
  /** Block size of the new file (default: the top file's). */
  readonly blockSize?: number;
  readonly overwrite?: boolean;
}

/**
 * Writes the merged view of the chain ending at `topPath` into a new dynamic VHD at `dstPath`,
 * which has no parent. All-zero blocks stay unallocated.
 */
export async function flattenChain(topPath: string, dstPath: string, ctx: OperationContext, options: FlattenOptions = {}): Promise<void> {
  const top = await VhdFile.open(topPath, { readOnly: true });
  let created = false;
  try {
    await createVhd(dstPath, {
      type: 'dynamic',
      size: top.virtualSize,
      blockSize: options.blockSize ?? top.geometry?.blockSize ?? DEFAULT_BLOCK_SIZE,
      overwrite: options.overwrite ?? false,
    });
    created = true;
    const out = await VhdFile.open(dstPath, { readOnly: false });
    try {
      const grain = out.geometry!.blockSize;
      await copyNonZero(top, (data, position) => out.write(data, position), ctx, {
        step: Math.max(grain, Math.floor(CHUNK / grain) * grain),
        grain,
        what: `Flattening "${topPath}"`,
        message: 'Flattening',
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
