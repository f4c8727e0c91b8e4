/**
 * Helpers for the storage libraries' tests only (never imported by product code): running the
 * oracle tools, scratch folders that clean up after themselves, and a seeded PRNG.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const exec = promisify(execFile);

export async function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const { stdout } = await exec(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

export interface Scratch {
  readonly dir: string;
  path(name: string): string;
}

/** Runs `fn` with a fresh temporary folder (named after `prefix`), removed afterwards whatever happens. */
export async function withScratchDir<T>(prefix: string, fn: (s: Scratch) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await fn({ dir, path: (name: string) => join(dir, name) });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Mulberry32: a small seeded PRNG so fuzz failures can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Mounts `image` with libvhdi's vhdimount (which resolves a differencing disk's parent by its
 * name beside it), hands `fn` the path of the top layer's raw view (the highest-numbered vhdiN),
 * and unmounts.
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

/** A disk opened by one of our libraries (VhdFile, VhdxFile). */
export interface OpenedDisk {
  readonly virtualSize: number;
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** Every virtual byte of a disk being opened, then closes it. */
export async function readWhole(opening: Promise<OpenedDisk>): Promise<Buffer> {
  const f = await opening;
  try {
    return await f.read(0, f.virtualSize);
  } finally {
    await f.close();
  }
}
