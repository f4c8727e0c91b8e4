import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { VisorError } from '../core/index.js';
import type { DiskFormat } from '../core/index.js';

const run = promisify(execFile);

/** QEMU's names for our formats: VHD is "vpc" to QEMU. */
export const QEMU_FORMAT: Record<DiskFormat, string> = { vhdx: 'vhdx', vhd: 'vpc', qcow2: 'qcow2', raw: 'raw' };

export interface ImageFacts {
  format: string;
  virtualSize: number;
  actualSize: number;
  backingFile: string | null;
}

/** `qemu-img info` of a file whose format we know (never let QEMU guess: a fixed VHD probes as raw). */
export async function imageInfo(path: string, format: DiskFormat, signal?: AbortSignal): Promise<ImageFacts> {
  const out = await qemuImg(['info', '--output=json', '-U', '-f', QEMU_FORMAT[format], path], signal);
  const info = JSON.parse(out) as { format: string; 'virtual-size': number; 'actual-size': number; 'backing-filename'?: string };
  return {
    format: info.format,
    virtualSize: info['virtual-size'],
    actualSize: info['actual-size'],
    backingFile: info['backing-filename'] ?? null,
  };
}

/** A new empty disk: dynamic (sparse) for vhdx and vhd, as Hyper-V's default. */
export async function createDisk(path: string, format: DiskFormat, size: number, signal?: AbortSignal): Promise<void> {
  const options: Record<DiskFormat, string[]> = {
    vhdx: ['-o', 'subformat=dynamic'],
    vhd: ['-o', 'subformat=dynamic,force_size=on'],
    qcow2: [],
    raw: [],
  };
  await qemuImg(['create', '-q', '-f', QEMU_FORMAT[format], ...options[format], path, String(size)], signal);
}

async function qemuImg(args: string[], signal?: AbortSignal): Promise<string> {
  try {
    const { stdout } = await run('qemu-img', args, { signal, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.name === 'AbortError') throw error;
    if (e.code === 'ENOENT') {
      throw new VisorError('unavailable', 'qemu-img-missing', 'qemu-img is not installed.', { hint: 'Run scripts/setup-host.sh.' });
    }
    throw new VisorError('failed', 'qemu-img-failed', `qemu-img ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`, { cause: error });
  }
}
