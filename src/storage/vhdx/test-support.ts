/**
 * Helpers for this folder's tests only (not exported by index.ts): scratch folders that clean up
 * after themselves, running the oracle tools (qemu-img, qemu-io, vhdimount) and a seeded PRNG.
 */
import { crc32cWithZeroedField } from './crc32c.js';
import { createVhdx } from './create.js';
import { VhdxFile } from './vhdx-file.js';
import { exec, prng, readWhole, run, withScratchDir, withVhdimount, type Scratch } from '../test-support.js';
export { prng, run, withVhdimount, type Scratch };

/** Every virtual byte of a VHDX, through our reader. */
export function readAll(path: string): Promise<Buffer> {
  return readWhole(VhdxFile.open(path));
}

export async function hasTool(cmd: string, args = ['--version']): Promise<boolean> {
  try {
    await exec(cmd, args, { timeout: 10_000 });
    return true;
  } catch (error) {
    // vhdimount -V exits 0; tools that print usage and exit 1 still exist.
    return (error as NodeJS.ErrnoException).code !== 'ENOENT' && (error as { code?: unknown }).code !== 'ENOENT';
  }
}

/** Runs `fn` with a fresh temporary folder, removed afterwards whatever happens. */
export function withScratch<T>(fn: (s: Scratch) => Promise<T>): Promise<T> {
  return withScratchDir('visor-vhdx-', fn);
}

const POOL = (() => {
  const rand = prng(0x5eed);
  const buf = Buffer.alloc(4 * 1024 * 1024 + 4096);
  for (let i = 0; i < buf.length; i += 4) buf.writeUInt32LE((rand() * 2 ** 32) >>> 0, i);
  return buf;
})();

/** `length` bytes of seeded pseudo-random data (slices of a random pool at seeded offsets). */
export function pattern(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  const rand = prng(seed);
  for (let done = 0; done < length; ) {
    const from = Math.floor(rand() * (POOL.length - 65536));
    const n = Math.min(length - done, 65536);
    POOL.copy(out, done, from, from + n);
    out[done] = (rand() * 256) | 0;
    done += n;
  }
  return out;
}

/** Something we can write at a position — a VhdxFile — mirrored into an in-memory model. */
export interface Writable {
  write(data: Buffer, position: number): Promise<void>;
  flush(): Promise<void>;
}

/**
 * Applies `count` random writes (unaligned offsets, lengths from one byte to a few blocks,
 * clustered so blocks get rewritten) to `file` and to `model`, flushing now and then.
 */
export async function randomWrites(file: Writable, model: Buffer, options: { seed: number; count: number; maxLength: number }): Promise<void> {
  const rand = prng(options.seed);
  for (let i = 0; i < options.count; i++) {
    const length = 1 + Math.floor(rand() ** 3 * Math.min(options.maxLength, model.length - 1));
    const aligned = rand() < 0.5;
    let position = Math.floor(rand() * (model.length - length));
    if (aligned) position -= position % 512;
    const data = pattern(length, options.seed * 1000 + i);
    await file.write(data, position);
    data.copy(model, position);
    if (rand() < 0.2) await file.flush();
  }
}

export function fixHeaderChecksums(buf: Buffer): void {
  for (const at of [64 * 1024, 128 * 1024]) buf.writeUInt32LE(crc32cWithZeroedField(buf.subarray(at, at + 4096), 4), at + 4);
}

export function fixRegionChecksums(buf: Buffer): void {
  for (const at of [192 * 1024, 256 * 1024]) buf.writeUInt32LE(crc32cWithZeroedField(buf.subarray(at, at + 65536), 4), at + 4);
}

/** A small dynamic disk (8 MiB, 1 MiB blocks) with two blocks written. */
export async function sampleFile(path: string): Promise<void> {
  await createVhdx(path, { type: 'dynamic', size: 8 * 1024 * 1024, blockSize: 1024 * 1024 });
  const f = await VhdxFile.open(path, { readOnly: false });
  await f.write(Buffer.alloc(1024 * 1024 + 512, 0x5a), 2 * 1024 * 1024 - 256);
  await f.close();
}

