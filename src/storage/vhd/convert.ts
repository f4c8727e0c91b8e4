/**
 * Streaming a VHD (or a differencing chain) to a raw image and a raw image to a VHD, and
 * flattening a chain into a new standalone VHD. Unallocated blocks are skipped and all-zero runs
 * left as holes, so raw output is sparse; allocated blocks that sit back to back in the file are
 * read in one large read (bitmaps and all) and several reads are in flight at once.
 */
import { open as openFile, unlink } from 'node:fs/promises';
import { cancelled } from '../../core/errors.js';
import type { OperationContext } from '../../core/progress.js';
import { createVhd, DEFAULT_BLOCK_SIZE } from './create.js';
import { inFile, vhdError } from './errors.js';
import { MiB, SECTOR_SIZE } from './layout.js';
import { VhdFile } from './vhd-file.js';
import { ZERO_GRAIN, forNonZeroRuns, writeAll } from '../file-io.js';

/** Bytes per read; several are in flight (libuv's pool has 4 threads). */
const CHUNK = Number(process.env['VISOR_VHD_CHUNK_MIB'] ?? 8) * MiB;
const IN_FLIGHT = Number(process.env['VISOR_VHD_IN_FLIGHT'] ?? 4);
/** Zeros to compare whole parts against (runs of ZERO_GRAIN zeros become holes in the output). */
const ZEROS = Buffer.alloc(Math.max(CHUNK, ZERO_GRAIN));
const PROGRESS_INTERVAL_MS = 100;

/** Part of the virtual disk: read from the file directly (`segments`) or through the chain. */
interface Piece {
  readonly position: number;
  readonly length: number;
  /** When set: one file read [fileStart, fileEnd) holds these virtual runs at these file offsets. */
  readonly direct?: { fileStart: number; fileEnd: number; segments: { position: number; fileOffset: number; length: number }[] };
}

/** The parts of the disk that may hold data, in order, as pieces of at most CHUNK file bytes. */
function* pieces(file: VhdFile): Generator<Piece> {
  const size = file.virtualSize;
  const g = file.geometry;
  if (!g) {
    for (let pos = 0; pos < size; pos += CHUNK) {
      const length = Math.min(CHUNK, size - pos);
      yield { position: pos, length, direct: { fileStart: pos, fileEnd: pos + length, segments: [{ position: pos, fileOffset: pos, length }] } };
    }
    return;
  }
  const differencing = file.diskType === 'differencing';
  let run: { position: number; length: number; fileStart: number; fileEnd: number; segments: { position: number; fileOffset: number; length: number }[] } | undefined;
  const flush = function* () {
    if (run) yield { position: run.position, length: run.length, direct: { fileStart: run.fileStart, fileEnd: run.fileEnd, segments: run.segments } };
    run = undefined;
  };
  for (let block = 0; block < g.blockCount; block++) {
    const position = block * g.blockSize;
    const length = Math.min(g.blockSize, size - position);
    if (!file.blockMayHoldData(block)) continue;
    const offset = file.blockFileOffset(block);
    if (differencing || offset === undefined) {
      yield* flush();
      for (let off = 0; off < length; off += CHUNK) yield { position: position + off, length: Math.min(CHUNK, length - off) };
      continue;
    }
    const data = offset + g.bitmapSize;
    for (let off = 0; off < length; off += CHUNK) {
      const n = Math.min(CHUNK, length - off);
      const seg = { position: position + off, fileOffset: data + off, length: n };
      if (run && run.position + run.length === seg.position && seg.fileOffset + n - run.fileStart <= CHUNK && seg.fileOffset >= run.fileEnd) {
        run.segments.push(seg);
        run.length += n;
        run.fileEnd = seg.fileOffset + n;
        continue;
      }
      yield* flush();
      run = { position: seg.position, length: n, fileStart: seg.fileOffset, fileEnd: seg.fileOffset + n, segments: [seg] };
    }
  }
  yield* flush();
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
    const out = await openFile(dst, 'w').catch((error: unknown) => {
      throw inFile(dst, error);
    });
    try {
      const size = file.virtualSize;
      await out.truncate(size);
      const queue = pieces(file);
      let lastReport = 0;
      let reached = 0;
      ctx.progress(0, 'Converting to raw');
      const worker = async () => {
        const buf = Buffer.allocUnsafe(CHUNK);
        for (;;) {
          if (ctx.signal.aborted) throw cancelled(`Converting "${file.path}" to raw`);
          const next = queue.next();
          if (next.done) return;
          const piece = next.value;
          if (piece.direct) {
            const { fileStart, fileEnd, segments } = piece.direct;
            await file.readFileBytes(buf.subarray(0, fileEnd - fileStart), fileStart);
            for (const seg of segments) {
              const view = buf.subarray(seg.fileOffset - fileStart, seg.fileOffset - fileStart + seg.length);
              await forNonZeroRuns(view, (from, to) => writeAll(out, view.subarray(from, to), seg.position + from));
            }
          } else {
            const view = buf.subarray(0, piece.length);
            await file.readInto(view, piece.position);
            await forNonZeroRuns(view, (from, to) => writeAll(out, view.subarray(from, to), piece.position + from));
          }
          // Workers finish out of order: report the furthest point reached, never going back.
          reached = Math.max(reached, piece.position + piece.length);
          const now = Date.now();
          if (now - lastReport > PROGRESS_INTERVAL_MS) {
            lastReport = now;
            ctx.progress(Math.min(1, reached / size), 'Converting to raw');
          }
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
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
      // Whole blocks per write, so a dynamic disk allocates only blocks with data.
      const grain = out.geometry?.blockSize ?? 2 * MiB;
      const step = Math.max(grain, Math.floor(CHUNK / grain) * grain);
      const buf = Buffer.alloc(step);
      ctx.progress(0, 'Converting from raw');
      for (let pos = 0; pos < size; pos += step) {
        if (ctx.signal.aborted) throw cancelled(`Converting "${src}" to VHD`);
        const n = Math.min(step, size - pos);
        const view = buf.subarray(0, n);
        let got = 0;
        while (got < n) {
          const { bytesRead } = await input.read(view, got, n - got, pos + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        view.fill(0, got);
        for (let off = 0; off < n; off += grain) {
          const part = view.subarray(off, Math.min(n, off + grain));
          if (part.compare(ZEROS, 0, part.length) !== 0) await out.write(part, pos + off);
        }
        ctx.progress((pos + n) / size, 'Converting from raw');
      }
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
      const size = top.virtualSize;
      const grain = out.geometry!.blockSize;
      const step = Math.max(grain, Math.floor(CHUNK / grain) * grain);
      const buf = Buffer.allocUnsafe(step);
      const topBlock = top.geometry?.blockSize;
      for (let pos = 0; pos < size; pos += step) {
        if (ctx.signal.aborted) throw cancelled(`Flattening "${topPath}"`);
        const n = Math.min(step, size - pos);
        if (topBlock !== undefined) {
          let mayHold = false;
          for (let b = Math.floor(pos / topBlock); b * topBlock < pos + n; b++) mayHold ||= top.blockMayHoldData(b);
          if (!mayHold) continue;
        }
        const view = buf.subarray(0, n);
        await top.readInto(view, pos);
        for (let off = 0; off < n; off += grain) {
          const part = view.subarray(off, Math.min(n, off + grain));
          if (part.compare(ZEROS, 0, part.length) !== 0) await out.write(part, pos + off);
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
