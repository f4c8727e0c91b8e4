import { open, unlink, type FileHandle } from 'node:fs/promises';
import { cancelled, VisorError } from '../core/errors.js';
import type { OperationContext } from '../core/progress.js';

/**
 * Positional file I/O that always moves every byte: a short read or write is continued, and a
 * read past the end of the file gives zeros (a disk image's unwritten tail reads as zeros).
 * Shared by the VHD and VHDX libraries.
 */
export async function readInto(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) {
      buf.fill(0, done);
      return;
    }
    done += bytesRead;
  }
}

/** Reads `length` bytes at `position` into a buffer of `size` (zeros past `length` or the file's end). */
export async function readExactly(fh: FileHandle, position: number, length: number, size = length): Promise<Buffer> {
  const buf = Buffer.alloc(size);
  if (length > 0) await readInto(fh, buf.subarray(0, length), position);
  return buf;
}

export async function writeAll(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) done += (await fh.write(data, done, data.length - done, position + done)).bytesWritten;
}

/**
 * Adds a file's path to a VisorError raised while handling it (once); wraps anything else as an
 * I/O failure with `ioCode`.
 */
export function errorInFile(path: string, error: unknown, ioCode: string): VisorError {
  if (error instanceof VisorError) {
    if (error.details?.['path'] !== undefined) return error;
    return new VisorError(error.kind, error.code, `${path}: ${error.message}`, {
      field: error.field,
      hint: error.hint,
      details: { ...error.details, path },
      cause: error.cause,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new VisorError('failed', ioCode, `${path}: ${message}`, { field: 'path', details: { path }, cause: error });
}

/** The granularity at which conversions skip zeros: a 64 KiB run of zeros stays a hole. */
export const ZERO_GRAIN = 64 * 1024;
const ZERO_GRAIN_BUFFER = Buffer.alloc(ZERO_GRAIN);

function isZero(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i += ZERO_GRAIN) {
    const end = Math.min(i + ZERO_GRAIN, to);
    if (buf.compare(ZERO_GRAIN_BUFFER, 0, end - i, i, end) !== 0) return false;
  }
  return true;
}

/**
 * Calls `write(from, to)` for each run of `buf` that is not all zeros, looking at `grain`-sized
 * parts from the start of `buf` (default ZERO_GRAIN): a part that is all zeros is left out.
 */
export async function forNonZeroRuns(buf: Buffer, write: (from: number, to: number) => Promise<void>, grain = ZERO_GRAIN): Promise<void> {
  let start = -1;
  for (let i = 0; i < buf.length; i += grain) {
    const end = Math.min(i + grain, buf.length);
    const zero = isZero(buf, i, end);
    if (!zero && start < 0) start = i;
    if (zero && start >= 0) {
      await write(start, i);
      start = -1;
    }
  }
  if (start >= 0) await write(start, buf.length);
}

/** A virtual disk as copyNonZero reads it (VhdxFile and VhdFile are ones). */
export interface DiskSource {
  readonly virtualSize: number;
  readInto(buf: Buffer, position: number): Promise<void>;
  /** False when nothing in [position, position + length) can hold data; absent means anything may. */
  blockMayHoldDataAt?(position: number, length: number): boolean;
}

export interface CopyNonZeroOptions {
  /** Bytes read at a time, from position 0 on; a multiple of `grain`. */
  readonly step: number;
  /** All-zero parts of this size (counted from position 0) are not written. */
  readonly grain: number;
  /** Named in the cancellation error. */
  readonly what: string;
  /** Progress message. */
  readonly message: string;
  /** Run after each `bytes` bytes read (a flush, say). */
  readonly checkpoint?: { readonly bytes: number; run(): Promise<void> };
}

/**
 * Copies the virtual disk `src` into an image through `write(data, position)` (a VHD or VHDX
 * file's write, which allocates blocks): stretches `src` says hold no data are skipped, and so
 * are all-zero parts, so the target allocates only blocks with data. One read at a time: the
 * target's writes go through its own bookkeeping (BAT, bitmaps, log), which is not built for
 * concurrency. Used to flatten chains and to convert raw images into VHDs.
 */
export async function copyNonZero(
  src: DiskSource,
  write: (data: Buffer, position: number) => Promise<void>,
  ctx: OperationContext,
  options: CopyNonZeroOptions,
): Promise<void> {
  const { step, grain, what, message, checkpoint } = options;
  const size = src.virtualSize;
  const buf = Buffer.allocUnsafe(Math.min(step, size));
  let sinceCheckpoint = 0;
  for (let pos = 0; pos < size; pos += step) {
    if (ctx.signal.aborted) throw cancelled(what);
    const n = Math.min(step, size - pos);
    if (src.blockMayHoldDataAt && !src.blockMayHoldDataAt(pos, n)) continue;
    const view = buf.subarray(0, n);
    await src.readInto(view, pos);
    await forNonZeroRuns(view, (from, to) => write(view.subarray(from, to), pos + from), grain);
    if (checkpoint && (sinceCheckpoint += n) >= checkpoint.bytes) {
      await checkpoint.run();
      sinceCheckpoint = 0;
    }
    ctx.progress((pos + n) / size, message);
  }
}

export interface RawImageOptions {
  /** Named in the cancellation error ("Converting "a.vhdx" to raw"). */
  readonly what: string;
  /** fdatasync the output before returning (qemu-img convert does not either). */
  readonly sync: boolean;
  /** Wraps a failure to create `dst` (the library's inFile, with its I/O error code). */
  inFile(path: string, error: unknown): VisorError;
}

/**
 * Writes a virtual disk of `size` bytes, given as the extents that may hold data, to the raw
 * image `dst` (created or replaced), sparse: it is sized first, so what is not written is a
 * hole, and copyToRaw leaves zero runs out. On failure or cancellation the partial output is
 * removed. Shared by the VHD and VHDX convertToRaw.
 */
export async function writeRawImage(dst: string, size: number, extents: Iterable<Extent>, ctx: OperationContext, options: RawImageOptions): Promise<void> {
  const out = await open(dst, 'w').catch((error: unknown) => {
    throw options.inFile(dst, error);
  });
  try {
    await out.truncate(size);
    await copyToRaw(out, size, extents, ctx, { what: options.what });
    if (options.sync) await out.datasync();
    await out.close();
    ctx.progress(1, 'Converted to raw');
  } catch (error) {
    await out.close().catch(() => undefined);
    await unlink(dst).catch(() => undefined);
    throw error;
  }
}

/**
 * Fills `out` with a parent disk's bytes at `position` (a differencing disk's unchanged
 * sectors); what lies past the parent's end reads as zeros.
 */
export async function readFromParent(parent: DiskSource, out: Buffer, position: number): Promise<void> {
  const available = Math.max(0, Math.min(out.length, parent.virtualSize - position));
  if (available > 0) await parent.readInto(out.subarray(0, available), position);
  out.fill(0, available);
}

/**
 * A stretch of a virtual disk that may hold data, for copyToRaw: `length` bytes at virtual
 * `position`; `read(buf, offset)` fills `buf` with its bytes from `offset` (within the extent) on.
 * Stretches not given are left as holes in the output.
 */
export interface Extent {
  readonly position: number;
  readonly length: number;
  read(buf: Buffer, offset: number): Promise<void>;
}

export interface CopyToRawOptions {
  /** Bytes per read (default COPY_CHUNK). */
  readonly chunk?: number;
  /** Reads and writes in flight, each lane with its own buffer (default COPY_LANES). */
  readonly lanes?: number;
  /** Named in the cancellation error ("Converting "a.vhdx" to raw"). */
  readonly what: string;
  /** Progress message (default 'Converting to raw'). */
  readonly message?: string;
}

/**
 * Chunk and lanes of copyToRaw, measured in-process on a 2-core AMD EPYC guest (ext4) against
 * `qemu-img convert` (8 requests of 2 MiB), rotating the order over 9 rounds: 2 MiB chunks
 * beat 1 MiB ones (median 320 vs 850 ms on the 1.3 GiB VHDX bench image, 4 lanes) and 512 KiB
 * ones; 6 lanes were a little ahead of 4 and 8, and 2 far behind (a lane waits for the main
 * thread between its read and its write, so fewer lanes leave libuv's 4 threads idle).
 * VISOR_COPY_CHUNK_KIB / VISOR_COPY_LANES override them for experiments.
 */
export const COPY_CHUNK = Math.max(1, Math.round(Number(process.env['VISOR_COPY_CHUNK_KIB'] ?? 2048) / 64)) * 64 * 1024;
export const COPY_LANES = Math.max(1, Number(process.env['VISOR_COPY_LANES'] ?? 6));

/**
 * `count` page-aligned buffers of `size` bytes (a multiple of 64 KiB), for bulk reads and writes.
 * Alignment matters to the kernel's copies between the page cache and these buffers: on the AMD
 * EPYC guest measured, reading and writing 1.3 GiB through a 1 MiB buffer at a page boundary
 * + 16 bytes (where malloc puts a large Buffer.allocUnsafe) took ~40% longer than through a
 * page-aligned one, serially; in copyToRaw's lanes of 2 MiB the best runs were ~10% slower
 * unaligned, the medians within the noise of a loaded host (qemu-img aligns its buffers too).
 * Node has no aligned allocation, but a WebAssembly memory is mapped on its own, page-aligned;
 * without WebAssembly (--jitless) we fall back to ordinary Buffers.
 */
export function alignedBuffers(count: number, size: number): Buffer[] {
  const wasm = (globalThis as { WebAssembly?: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly;
  let memory: { buffer: ArrayBuffer } | undefined;
  try {
    // V8 reserves address space for a WebAssembly memory; where that is refused (ulimit -v), plain Buffers.
    if (wasm && size % 65536 === 0) memory = new wasm.Memory({ initial: (count * size) / 65536 });
  } catch {
    memory = undefined;
  }
  return Array.from({ length: count }, (_, i) => (memory ? Buffer.from(memory.buffer, i * size, size) : Buffer.allocUnsafe(size)));
}

/**
 * Writes `extents` (in increasing position, not overlapping) into the raw image open as `out`,
 * which the caller has already sized: the bytes between extents, and runs of ZERO_GRAIN zeros
 * within them, are left as holes. Reads and writes run in `lanes` lanes; each lane reads a
 * chunk into its buffer and writes it back out at once. Reports progress through `ctx`, and
 * stops at the next chunk when `ctx.signal` is aborted, throwing a cancellation. After a failure
 * in one lane the others stop, and the first error is thrown once none is in flight.
 */
export async function copyToRaw(
  out: FileHandle,
  size: number,
  extents: Iterable<Extent>,
  ctx: OperationContext,
  options: CopyToRawOptions,
): Promise<void> {
  const chunk = options.chunk ?? COPY_CHUNK;
  if (chunk % 65536 !== 0) throw new RangeError(`copyToRaw: chunk ${chunk} is not a multiple of 64 KiB`);
  const message = options.message ?? 'Converting to raw';
  const source = extents[Symbol.iterator]();
  let current: Extent | undefined;
  let offset = 0;
  /** The next chunk to copy, in order: [extent, offset within it, length]. */
  const next = (): [Extent, number, number] | undefined => {
    while (!current || offset >= current.length) {
      const r = source.next();
      if (r.done) return undefined;
      current = r.value;
      offset = 0;
    }
    const n = Math.min(chunk, current.length - offset);
    const at = offset;
    offset += n;
    return [current, at, n];
  };
  let failure: unknown;
  let reached = 0;
  let lastReport = 0;
  const lane = async (buf: Buffer): Promise<void> => {
    for (;;) {
      if (failure !== undefined) return;
      if (ctx.signal.aborted) throw cancelled(options.what);
      const piece = next();
      if (!piece) return;
      const [extent, at, n] = piece;
      const view = n === chunk ? buf : buf.subarray(0, n);
      await extent.read(view, at);
      const position = extent.position + at;
      await forNonZeroRuns(view, (from, to) => writeAll(out, view.subarray(from, to), position + from));
      // Lanes finish out of order: report the furthest point reached, never going back.
      if (position + n > reached) reached = position + n;
      const now = Date.now();
      if (now - lastReport > PROGRESS_INTERVAL_MS) {
        lastReport = now;
        ctx.progress(Math.min(1, reached / size), message);
      }
    }
  };
  ctx.progress(0, message);
  const lanes = alignedBuffers(options.lanes ?? COPY_LANES, chunk).map((buf) =>
    lane(buf).catch((error: unknown) => {
      failure ??= error;
    }),
  );
  await Promise.all(lanes);
  if (failure !== undefined) throw failure;
}
const PROGRESS_INTERVAL_MS = 100;
