/**
 * Streaming a VHDX (or a differencing chain) to a raw image, and flattening a chain into a new
 * standalone VHDX. Unallocated blocks are skipped and all-zero runs are left as holes, so the
 * output is sparse; reads are large and several are in flight at once.
 */
import { open as openFile, unlink } from 'node:fs/promises';
import { cancelled } from '../../core/errors.js';
import type { OperationContext } from '../../core/progress.js';
import { PAYLOAD_BLOCK_FULLY_PRESENT } from './bat.js';
import { createVhdx } from './create.js';
import { inFile } from './errors.js';
import { MiB } from './layout.js';
import { VhdxFile } from './vhdx-file.js';
import { forNonZeroRuns, writeAll } from '../file-io.js';

/**
 * Bytes per request and requests in flight: qemu-img's own choice (2 MiB, 8). On an idle
 * 2-core host one request at a time was as fast; on a loaded one (load 8-10) 8 in flight was
 * 2-3x faster, because each thread-pool hand-off waits for a CPU. Concurrency is capped by
 * libuv's pool (UV_THREADPOOL_SIZE, 4 by default; the bench sets 16).
 * VISOR_VHDX_CHUNK_MIB / VISOR_VHDX_IN_FLIGHT override for experiments.
 */
const CHUNK = Math.max(0.0625, Number(process.env['VISOR_VHDX_CHUNK_MIB'] ?? 2)) * MiB;
const IN_FLIGHT = Math.max(1, Number(process.env['VISOR_VHDX_IN_FLIGHT'] ?? 8));

interface Piece {
  readonly position: number;
  readonly length: number;
  /** Set when the bytes can be read straight from the top file. */
  readonly fileOffset?: number;
}

/** The non-empty parts of the disk, in order, as pieces of at most CHUNK bytes. */
function* pieces(file: VhdxFile): Generator<Piece> {
  const { blockSize, dataBlockCount } = file.geometry;
  const size = file.virtualSize;
  let run: { position: number; length: number; fileOffset?: number } | undefined;
  for (let block = 0; block < dataBlockCount; block++) {
    const position = block * blockSize;
    const length = Math.min(blockSize, size - position);
    if (!file.blockMayHoldData(block)) continue;
    const m = file.blockMapping(block);
    const direct = m.state === PAYLOAD_BLOCK_FULLY_PRESENT;
    for (let off = 0; off < length; off += CHUNK) {
      const n = Math.min(CHUNK, length - off);
      const piece = direct ? { position: position + off, length: n, fileOffset: m.fileOffset + off } : { position: position + off, length: n };
      if (
        run &&
        run.position + run.length === piece.position &&
        run.length + n <= CHUNK &&
        (run.fileOffset === undefined) === (piece.fileOffset === undefined) &&
        (run.fileOffset === undefined || run.fileOffset + run.length === piece.fileOffset)
      ) {
        run.length += n;
        continue;
      }
      if (run) yield run;
      run = { ...piece };
    }
  }
  if (run) yield run;
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
      const size = file.virtualSize;
      await out.truncate(size);
      // Like qemu-img (8 requests of 2 MiB): IN_FLIGHT buffers circulate; reads are issued in
      // order and run ahead, each piece's writes are issued as soon as its read is done (and
      // those before it were issued), and a buffer comes back when its writes are done. Keeping
      // several requests in flight hides the thread-pool hand-off latency on a busy host.
      const queue = pieces(file);
      const free: Buffer[] = Array.from({ length: IN_FLIGHT }, () => Buffer.allocUnsafe(CHUNK));
      const reads: Promise<{ piece: Piece; buf: Buffer }>[] = [];
      const writes = new Set<Promise<void>>();
      let failure: unknown;
      let exhausted = false;
      const startReads = (): void => {
        while (!exhausted && free.length > 0) {
          const next = queue.next();
          if (next.done) {
            exhausted = true;
            return;
          }
          const buf = free.pop()!;
          const piece = next.value;
          const view = buf.subarray(0, piece.length);
          const read = piece.fileOffset !== undefined ? file.readFileBytes(view, piece.fileOffset) : file.readInto(view, piece.position);
          const tagged = read.then(() => ({ piece, buf }));
          tagged.catch(() => undefined); // surfaced when awaited below
          reads.push(tagged);
        }
      };
      let lastReport = 0;
      ctx.progress(0, 'Converting to raw');
      startReads();
      while (reads.length > 0) {
        if (ctx.signal.aborted) throw cancelled(`Converting "${file.path}" to raw`);
        if (failure !== undefined) throw failure;
        const { piece, buf } = await reads.shift()!;
        const view = buf.subarray(0, piece.length);
        const runs: Promise<unknown>[] = [];
        await forNonZeroRuns(view, async (from, to) => {
          runs.push(writeAll(out, view.subarray(from, to), piece.position + from));
        });
        const done: Promise<void> = Promise.all(runs).then(
          () => {
            free.push(buf);
            writes.delete(done);
          },
          (error: unknown) => {
            failure ??= error;
            writes.delete(done);
          },
        );
        writes.add(done);
        startReads();
        while (free.length === 0 && writes.size > 0 && !exhausted) {
          await Promise.race(writes);
          startReads();
        }
        const now = Date.now();
        if (now - lastReport > 100) {
          lastReport = now;
          ctx.progress((piece.position + piece.length) / size, 'Converting to raw');
        }
      }
      await Promise.all(writes);
      if (failure !== undefined) throw failure;
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
