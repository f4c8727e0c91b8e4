/**
 * Helpers for this folder's tests only (not exported by index.ts): scratch folders that clean up
 * after themselves, the oracle tools (qemu-img, qemu-io, vhdimount) and a seeded PRNG.
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { prng, run, withScratchDir, type Scratch } from '../test-support.js';
export { prng, run, type Scratch };

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

/**
 * Mounts `image` with libvhdi's vhdimount (which resolves a differencing disk's parent by its
 * name beside it), hands `fn` the path of the raw view, and unmounts.
 */
export async function withVhdimount<T>(image: string, mountPoint: string, fn: (raw: string) => Promise<T>): Promise<T> {
  await mkdir(mountPoint, { recursive: true });
  await run('vhdimount', [image, mountPoint]);
  try {
    const layers = (await readdir(mountPoint)).filter((n) => /^vhdi\d+$/.test(n)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
    const top = layers[layers.length - 1];
    if (!top) throw new Error(`vhdimount showed no layers for ${image}`);
    return await fn(join(mountPoint, top));
  } finally {
    await run('umount', [mountPoint]).catch(() => run('fusermount', ['-u', mountPoint]));
  }
}

/** Compares two buffers and, when they differ, names the first differing offset. */
export function firstDifference(a: Buffer, b: Buffer): number | undefined {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  if (a.equals(b)) return undefined;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return undefined;
}
