/**
 * Helpers for this folder's tests only (not exported by index.ts): scratch folders that clean up
 * after themselves, the oracle tools (qemu-img, qemu-io, vhdimount) and a seeded PRNG.
 */
import { readFile, rm } from 'node:fs/promises';
import { prng, readWhole, run, withScratchDir, withVhdimount, type Scratch } from '../test-support.js';
import { VhdFile } from './vhd-file.js';
export { prng, run, withVhdimount, type Scratch };

/** Every virtual byte of a VHD, through our reader. */
export function readAll(path: string): Promise<Buffer> {
  return readWhole(VhdFile.open(path));
}

/** Runs `fn` with a fresh temporary folder, removed afterwards whatever happens. */
export function withScratch<T>(fn: (s: Scratch) => Promise<T>): Promise<T> {
  return withScratchDir('visor-vhd-', fn);
}

/** `length` bytes of a pattern seeded by `seed`. */
export function pattern(length: number, seed: number): Buffer {
  const buf = Buffer.alloc(length + 4);
  const rand = prng(seed);
  for (let i = 0; i < length; i += 4) buf.writeUInt32LE((rand() * 2 ** 32) >>> 0, i);
  return buf.subarray(0, length);
}

/** The raw bytes `qemu-img convert -f vpc -O raw` makes of `image`. */
export async function qemuRaw(image: string, scratch: Scratch, name = 'qemu.raw'): Promise<Buffer> {
  const out = scratch.path(name);
  await run('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', image, out]);
  const bytes = await readFile(out);
  await rm(out, { force: true });
  return bytes;
}

/** `qemu-img info --output=json -f vpc`. */
export async function qemuInfo(image: string): Promise<{ 'virtual-size': number; format: string }> {
  return JSON.parse(await run('qemu-img', ['info', '--output=json', '-f', 'vpc', image])) as { 'virtual-size': number; format: string };
}

/** Compares two buffers and, when they differ, names the first differing offset. */
export function firstDifference(a: Buffer, b: Buffer): number | undefined {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  if (a.equals(b)) return undefined;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return undefined;
}
