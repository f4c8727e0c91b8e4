import { open } from 'node:fs/promises';

/** Bytes of a log we read from its end: enough for QEMU's last error lines. */
const TAIL_BYTES = 8 * 1024;

/** The last `maxLines` non-empty lines of a log file, or [] when it is missing. */
export async function readLogTail(path: string, maxLines = 20): Promise<string[]> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return [];
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    return buffer
      .toString('utf8')
      .split('\n')
      .map((line) => line.trimEnd())
      .filter((line) => line.length > 0)
      .slice(-maxLines);
  } finally {
    await handle.close();
  }
}

/**
 * The line that best says why QEMU stopped or refused to start: the last one naming the binary
 * ("qemu-system-x86_64: -device foo: ..."), without the -msg timestamp prefix.
 */
export function lastErrorLine(lines: readonly string[]): string | null {
  const stripped = lines.map((line) => line.replace(/^\d{4}-\d\d-\d\dT[\d:.]+Z /, ''));
  const named = stripped.filter((line) => /qemu-(system-\w+|storage-daemon)/.test(line));
  return named.at(-1) ?? stripped.at(-1) ?? null;
}
