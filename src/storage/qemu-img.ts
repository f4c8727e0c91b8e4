import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { cancelled, VisorError } from '../core/index.js';
import type { DiskFormat, OperationContext } from '../core/index.js';

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

/**
 * A qcow2 differencing child of `parent` (a file or a network URL QEMU opens): new writes go to
 * the child, unwritten blocks read from the parent, which is never written. QEMU cannot open
 * differencing VHDX/VHD files, so a child is qcow2 whatever its parent's format.
 */
export async function createDifferencingChild(path: string, parent: { path: string; format: DiskFormat }, signal?: AbortSignal): Promise<void> {
  await qemuImg(['create', '-q', '-f', 'qcow2', '-b', parent.path, '-F', QEMU_FORMAT[parent.format], path], signal);
}

export async function qemuImg(args: string[], signal?: AbortSignal): Promise<string> {
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

/**
 * Runs a qemu-img command that takes `-p` (convert, commit) and turns its "(12.34/100%)" lines
 * into ctx.progress. Cancelling kills qemu-img and throws the cancellation; the caller removes
 * whatever it had begun to write.
 */
export async function qemuImgWithProgress(args: string[], ctx: OperationContext, message: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('qemu-img', [args[0]!, '-p', ...args.slice(1)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let cancelledByUs = false;
    const onAbort = (): void => {
      cancelledByUs = true;
      child.kill('SIGTERM');
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    if (ctx.signal.aborted) onAbort();
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      const all = [...text.matchAll(PROGRESS)];
      const last = all.at(-1);
      if (last) ctx.progress(Math.min(1, Number(last[1]) / 100), message);
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.on('error', (error: NodeJS.ErrnoException) => {
      ctx.signal.removeEventListener('abort', onAbort);
      reject(
        error.code === 'ENOENT'
          ? new VisorError('unavailable', 'qemu-img-missing', 'qemu-img is not installed.', { hint: 'Run scripts/setup-host.sh.' })
          : error,
      );
    });
    child.on('close', (code) => {
      ctx.signal.removeEventListener('abort', onAbort);
      if (cancelledByUs) reject(cancelled(message));
      else if (code === 0) resolve();
      else reject(new VisorError('failed', 'qemu-img-failed', `qemu-img ${args[0]} failed: ${stderr.trim() || `exit code ${code}`}`));
    });
  });
}

const PROGRESS = /\((\d+(?:\.\d+)?)\/100%\)/g;
