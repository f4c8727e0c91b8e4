/**
 * Helpers for the storage libraries' tests only (never imported by product code): running the
 * oracle tools, scratch folders that clean up after themselves, and a seeded PRNG.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
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
