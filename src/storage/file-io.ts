import type { FileHandle } from 'node:fs/promises';
import { VisorError } from '../core/errors.js';

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

/** Calls `write(from, to)` for each run of `buf` that is not all zeros (ZERO_GRAIN granularity). */
export async function forNonZeroRuns(buf: Buffer, write: (from: number, to: number) => Promise<void>): Promise<void> {
  let start = -1;
  for (let i = 0; i < buf.length; i += ZERO_GRAIN) {
    const end = Math.min(i + ZERO_GRAIN, buf.length);
    const zero = buf.compare(ZERO_GRAIN_BUFFER, 0, end - i, i, end) === 0;
    if (!zero && start < 0) start = i;
    if (zero && start >= 0) {
      await write(start, i);
      start = -1;
    }
  }
  if (start >= 0) await write(start, buf.length);
}
