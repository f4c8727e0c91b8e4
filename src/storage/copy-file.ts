import { open, rm } from 'node:fs/promises';
import type { OperationContext } from '../core/index.js';

const CHUNK = 4 * 1024 * 1024;

/**
 * Copies a disk file with progress and cancel, keeping holes (a zero chunk is skipped, not
 * written, so a sparse image stays sparse). On failure or cancel the partial copy is removed.
 */
export async function copyDiskFile(source: string, target: string, ctx: OperationContext): Promise<void> {
  const input = await open(source, 'r');
  let output;
  try {
    output = await open(target, 'wx', 0o600);
    const { size } = await input.stat();
    const buffer = Buffer.alloc(CHUNK);
    for (let offset = 0; offset < size; offset += CHUNK) {
      ctx.signal.throwIfAborted();
      const { bytesRead } = await input.read(buffer, 0, CHUNK, offset);
      const chunk = buffer.subarray(0, bytesRead);
      if (!isZero(chunk)) await output.write(chunk, 0, bytesRead, offset);
      ctx.progress((offset + bytesRead) / size, 'Copying disk');
    }
    await output.truncate(size);
    await output.sync();
  } catch (error) {
    await output?.close();
    output = undefined;
    await rm(target, { force: true });
    throw error;
  } finally {
    await output?.close();
    await input.close();
  }
}

function isZero(chunk: Buffer): boolean {
  // Compare 8 bytes at a time; a disk image is mostly holes or mostly data, rarely in between.
  const words = new BigUint64Array(chunk.buffer, chunk.byteOffset, Math.floor(chunk.length / 8));
  for (const word of words) if (word !== 0n) return false;
  for (let i = words.length * 8; i < chunk.length; i += 1) if (chunk[i] !== 0) return false;
  return true;
}
