import { open as openFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { asVisorError, VisorError } from '../core/index.js';
import type { DiskConvertSpec, DiskFormat, DiskInfo, DiskNewSpec, DiskPathSpec, DiskResizeSpec, OperationContext } from '../core/index.js';
import { QEMU_FORMAT, qemuImg, qemuImgWithProgress } from './qemu-img.js';
import * as vhdx from './vhdx/index.js';
import * as vhd from './vhd/index.js';

/**
 * Disk operations on files at rest: new, inspect, convert, resize, compact, merge. VHDX and VHD
 * go through our own libraries (they read differencing chains, which QEMU cannot); qcow2 and raw
 * through qemu-img. Each long operation is split in two: `prepare…` checks everything that can
 * be checked without doing the work (so the API refuses bad input before a job exists) and
 * answers the work itself, which takes an OperationContext (progress, cancel).
 */
export type DiskWork = (ctx: OperationContext) => Promise<DiskInfo>;

/** Magic numbers, with their ASCII. */
const VHDX_SIGNATURE = Buffer.from('vhdxfile', 'ascii'); // MS-VHDX 2.2.1 file type identifier
const VHD_COOKIE = Buffer.from('conectix', 'ascii'); // VHD footer cookie (512-byte footer)
const QCOW_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]); // "QFI\xfb"
const VHD_FOOTER_SIZE = 512;

/** The format of the file at `path`, by its signature; anything unrecognised is raw. */
export async function detectFormat(path: string): Promise<DiskFormat> {
  const fh = await openFile(path, 'r').catch((error: unknown) => {
    throw fileError(path, error);
  });
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(VHD_FOOTER_SIZE);
    await fh.read(head, 0, Math.min(size, VHD_FOOTER_SIZE), 0);
    if (head.subarray(0, 8).equals(VHDX_SIGNATURE)) return 'vhdx';
    if (head.subarray(0, 4).equals(QCOW_MAGIC)) return 'qcow2';
    if (size >= VHD_FOOTER_SIZE) {
      const tail = Buffer.alloc(VHD_FOOTER_SIZE);
      await fh.read(tail, 0, VHD_FOOTER_SIZE, size - VHD_FOOTER_SIZE);
      // A dynamic VHD also keeps a copy of its footer at offset 0.
      if (tail.subarray(0, 8).equals(VHD_COOKIE) || head.subarray(0, 8).equals(VHD_COOKIE)) return 'vhd';
    }
    return 'raw';
  } finally {
    await fh.close();
  }
}

/** What `visor disk inspect` shows. Never throws for a damaged file: `health` says what is wrong. */
export async function inspectDisk(path: string, signal?: AbortSignal): Promise<DiskInfo> {
  const format = await detectFormat(path);
  const physicalSize = await allocatedBytes(path);
  const base = { path, format, physicalSize };
  switch (format) {
    case 'vhdx':
    case 'vhd':
      return inspectOurs(path, format, physicalSize);
    case 'qcow2': {
      const out = await qemuImg(['info', '--output=json', '-U', '--backing-chain', '-f', 'qcow2', path], signal);
      const chain = JSON.parse(out) as Array<{ filename: string; format: string; 'virtual-size': number; 'cluster-size'?: number }>;
      const top = chain[0]!;
      const findings = await qcow2Check(path, signal);
      return {
        ...base,
        type: chain.length > 1 ? 'differencing' : 'dynamic',
        virtualSize: top['virtual-size'],
        blockSize: top['cluster-size'] ?? null,
        parents: chain.slice(1).map((p) => ({ path: p.filename, format: fromQemuFormat(p.format) })),
        health: { ok: findings.length === 0, findings },
      };
    }
    case 'raw':
      return { ...base, type: null, virtualSize: (await stat(path)).size, blockSize: null, parents: [], health: { ok: true, findings: [] } };
  }
}

async function inspectOurs(path: string, format: 'vhdx' | 'vhd', physicalSize: number): Promise<DiskInfo> {
  const findings: string[] = [];
  let file: vhdx.VhdxFile | vhd.VhdFile;
  try {
    file = format === 'vhdx' ? await vhdx.VhdxFile.open(path) : await vhd.VhdFile.open(path);
  } catch (error) {
    findings.push(asVisorError(error).message);
    // The file itself may be sound and only its parent missing or damaged: say what we can.
    try {
      file = format === 'vhdx' ? await vhdx.VhdxFile.open(path, { openParent: false }) : await vhd.VhdFile.open(path, { openParent: false });
    } catch {
      return { path, format, physicalSize, type: null, virtualSize: null, blockSize: null, parents: [], health: { ok: false, findings } };
    }
  }
  try {
    const parents: DiskInfo['parents'] = [];
    for (let p = file.parent; p !== undefined; p = p.parent) parents.push({ path: p.path, format });
    if (file instanceof vhdx.VhdxFile) {
      const info = file.info;
      if (info.logReplay === 'in-memory') findings.push('The log holds changes not yet written to the file (they are replayed when it is opened for writing).');
      return { path, format, physicalSize, type: info.diskType, virtualSize: info.virtualSize, blockSize: info.blockSize, parents, health: { ok: findings.length === 0, findings } };
    }
    const info = file.info;
    return {
      path,
      format,
      physicalSize,
      type: info.diskType,
      virtualSize: info.virtualSize,
      blockSize: info.blockSize === 0 ? null : info.blockSize,
      parents,
      health: { ok: findings.length === 0, findings },
    };
  } finally {
    await file.close();
  }
}

async function qcow2Check(path: string, signal?: AbortSignal): Promise<string[]> {
  try {
    const out = await run('qemu-img', ['check', '--output=json', '-U', '-f', 'qcow2', path], { signal });
    return checkFindings(out.stdout);
  } catch (error) {
    // Exit codes 2 and 3 mean "corrupt" and "leaks": the JSON is still on stdout.
    const e = error as { stdout?: string; message: string };
    if (e.stdout) return checkFindings(e.stdout);
    return [`qemu-img check failed: ${e.message}`];
  }
}

function checkFindings(json: string): string[] {
  const r = JSON.parse(json) as { corruptions?: number; leaks?: number; 'check-errors'?: number };
  const out: string[] = [];
  if (r.corruptions) out.push(`${r.corruptions} corruption(s) found by qemu-img check.`);
  if (r.leaks) out.push(`${r.leaks} leaked cluster(s) found by qemu-img check.`);
  if (r['check-errors']) out.push(`${r['check-errors']} error(s) while checking.`);
  return out;
}

// ---- new

export async function prepareNewDisk(spec: DiskNewSpec): Promise<DiskWork> {
  const path = resolve(spec.path);
  await mustNotExist(path, 'path');
  await folderMustExist(path, 'path');
  let parentFormat: DiskFormat | undefined;
  if (spec.parent !== undefined) {
    await mustExist(spec.parent, 'parent');
    parentFormat = await detectFormat(spec.parent);
    if (spec.format === 'raw') throw invalidValue('format', 'A raw disk cannot have a parent.', 'Use vhdx, vhd or qcow2 for a differencing disk.');
    if ((spec.format === 'vhdx' || spec.format === 'vhd') && parentFormat !== spec.format) {
      throw invalidValue('parent', `A differencing ${spec.format} disk needs a ${spec.format} parent; "${spec.parent}" is ${parentFormat}.`, `Convert the parent first: visor disk convert ${spec.parent} PATH --format ${spec.format}.`);
    }
    if (spec.size !== undefined) throw invalidValue('size', 'A differencing disk has its parent\'s size; leave out the size.');
  } else if (spec.size === undefined) {
    throw invalidValue('size', 'A new disk needs a size.', 'For example --size 8G.');
  } else if (spec.size % 512 !== 0) {
    throw invalidValue('size', `The size must be a multiple of 512 bytes: current value is ${spec.size}.`);
  }
  return async (ctx) => {
    ctx.progress(0, 'Creating disk');
    try {
      await newDiskNow(path, spec, parentFormat, ctx.signal);
    } catch (error) {
      await unlink(path).catch(() => undefined);
      throw error;
    }
    ctx.progress(1, 'Created');
    return inspectDisk(path);
  };
}

async function newDiskNow(path: string, spec: DiskNewSpec, parentFormat: DiskFormat | undefined, signal: AbortSignal): Promise<void> {
  const parent = spec.parent;
  switch (spec.format) {
    case 'vhdx':
      return parent !== undefined ? vhdx.createVhdx(path, { type: 'differencing', parentPath: parent }) : vhdx.createVhdx(path, { type: spec.type, size: spec.size! });
    case 'vhd':
      return parent !== undefined ? vhd.createVhd(path, { type: 'differencing', parentPath: parent }) : vhd.createVhd(path, { type: spec.type, size: spec.size! });
    case 'qcow2':
      if (parent !== undefined) {
        await qemuImg(['create', '-q', '-f', 'qcow2', '-b', resolve(parent), '-F', QEMU_FORMAT[parentFormat!], path], signal);
      } else {
        await qemuImg(['create', '-q', '-f', 'qcow2', ...(spec.type === 'fixed' ? ['-o', 'preallocation=falloc'] : []), path, String(spec.size)], signal);
      }
      return;
    case 'raw':
      await qemuImg(['create', '-q', '-f', 'raw', ...(spec.type === 'fixed' ? ['-o', 'preallocation=falloc'] : []), path, String(spec.size)], signal);
  }
}

export async function newDisk(spec: DiskNewSpec, ctx: OperationContext): Promise<DiskInfo> {
  return (await prepareNewDisk(spec))(ctx);
}

// ---- convert

/**
 * A new standalone disk at `destination` with the virtual contents of `path` (a differencing
 * chain is flattened). Cancelled or failed, no partial output is left.
 */
export async function prepareConvertDisk(spec: DiskConvertSpec): Promise<DiskWork> {
  const src = resolve(spec.path);
  const dst = resolve(spec.destination);
  await mustExist(src, 'path');
  if (src === dst) throw invalidValue('destination', 'The destination is the source; a conversion writes a new file.');
  await mustNotExist(dst, 'destination');
  await folderMustExist(dst, 'destination');
  const from = await inspectDisk(src);
  if (!from.health.ok) {
    throw new VisorError('conflict', 'disk-unhealthy', `Cannot convert "${src}": ${from.health.findings.join(' ')}`, { field: 'path', hint: `See "visor disk inspect ${src}".` });
  }
  return async (ctx) => {
    try {
      await convertNow(src, from, dst, spec.format, ctx);
    } catch (error) {
      await unlink(dst).catch(() => undefined);
      throw error;
    }
    ctx.progress(1, 'Converted');
    return inspectDisk(dst);
  };
}

async function convertNow(src: string, from: DiskInfo, dst: string, format: DiskFormat, ctx: OperationContext): Promise<void> {
  const ours = from.format === 'vhdx' || from.format === 'vhd';
  // Our libraries where they apply: they read differencing chains, which QEMU cannot.
  if (from.format === 'vhdx' && format === 'vhdx') return vhdx.flattenChain(src, dst, ctx);
  if (from.format === 'vhd' && format === 'vhd') return vhd.flattenChain(src, dst, ctx);
  if (from.format === 'vhdx' && format === 'raw') return vhdx.convertToRaw(src, dst, ctx);
  if (from.format === 'vhd' && format === 'raw') return vhd.convertToRaw(src, dst, ctx);
  if (from.format === 'raw' && format === 'vhd') return vhd.convertFromRaw(src, dst, ctx);
  if (ours && from.type === 'differencing') {
    // QEMU cannot open the chain: flatten it to raw with our library, then convert that.
    const temporary = `${dst}.partial.raw`;
    try {
      await (from.format === 'vhdx' ? vhdx.convertToRaw : vhd.convertToRaw)(src, temporary, scaled(ctx, 0, 0.5));
      const raw: DiskInfo = { ...from, path: temporary, format: 'raw', type: null, parents: [] };
      await convertNow(temporary, raw, dst, format, scaled(ctx, 0.5, 1));
    } finally {
      await unlink(temporary).catch(() => undefined);
    }
    return;
  }
  const options = format === 'vhdx' ? ['-o', 'subformat=dynamic'] : format === 'vhd' ? ['-o', 'subformat=dynamic,force_size=on'] : [];
  await qemuImgWithProgress(['convert', '-f', QEMU_FORMAT[from.format], '-O', QEMU_FORMAT[format], ...options, src, dst], ctx, 'Converting');
}

export async function convertDisk(spec: DiskConvertSpec, ctx: OperationContext): Promise<DiskInfo> {
  return (await prepareConvertDisk(spec))(ctx);
}

// ---- resize

export async function prepareResizeDisk(spec: DiskResizeSpec): Promise<DiskWork> {
  const path = resolve(spec.path);
  const info = await mustBeHealthy(path);
  if (spec.size % 512 !== 0) throw invalidValue('size', `The size must be a multiple of 512 bytes: current value is ${spec.size}.`);
  if (info.type === 'differencing') {
    throw invalidValue('path', `"${path}" is a differencing disk; it has its parent's size.`, 'Merge it or convert it to a standalone disk first.');
  }
  const shrink = spec.size < info.virtualSize!;
  if (shrink && info.format !== 'vhdx') {
    throw invalidValue('size', `Shrinking a ${info.format} disk is refused: ${spec.size} is less than its ${info.virtualSize} bytes.`, 'Only VHDX disks shrink, and only over unused space.');
  }
  return async (ctx) => {
    ctx.progress(0, 'Resizing');
    switch (info.format) {
      case 'vhdx':
        await vhdx.resizeVhdx(path, spec.size, ctx);
        break;
      case 'vhd':
        await vhd.resizeVhd(path, spec.size, ctx);
        break;
      default:
        await qemuImg(['resize', '-q', '-f', QEMU_FORMAT[info.format], path, String(spec.size)], ctx.signal);
    }
    ctx.progress(1, 'Resized');
    return inspectDisk(path);
  };
}

export async function resizeDisk(spec: DiskResizeSpec, ctx: OperationContext): Promise<DiskInfo> {
  return (await prepareResizeDisk(spec))(ctx);
}

// ---- compact

export async function prepareCompactDisk(spec: DiskPathSpec): Promise<DiskWork> {
  const path = resolve(spec.path);
  const info = await mustBeHealthy(path);
  if (info.type === 'fixed') throw invalidValue('path', `"${path}" is a fixed disk; only dynamic disks give space back.`);
  return async (ctx) => {
    ctx.progress(0, 'Compacting');
    switch (info.format) {
      case 'vhdx':
        await vhdx.compactVhdx(path, ctx);
        break;
      case 'vhd':
        await vhd.compactVhd(path, ctx);
        break;
      case 'qcow2': {
        // Rewriting the image leaves out unallocated and all-zero clusters.
        const temporary = `${path}.compact.partial`;
        const backing = info.parents[0];
        try {
          await qemuImgWithProgress(
            ['convert', '-f', 'qcow2', '-O', 'qcow2', ...(backing ? ['-B', backing.path, '-F', QEMU_FORMAT[backing.format]] : []), path, temporary],
            ctx,
            'Compacting',
          );
          await rename(temporary, path);
        } catch (error) {
          await unlink(temporary).catch(() => undefined);
          throw error;
        }
        break;
      }
      case 'raw':
        // Punch holes where the file holds zeros (util-linux).
        await run('fallocate', ['--dig-holes', path], { signal: ctx.signal }).catch((error: unknown) => {
          throw new VisorError('failed', 'compact-failed', `fallocate --dig-holes "${path}" failed: ${(error as Error).message}`);
        });
    }
    ctx.progress(1, 'Compacted');
    return inspectDisk(path);
  };
}

export async function compactDisk(spec: DiskPathSpec, ctx: OperationContext): Promise<DiskInfo> {
  return (await prepareCompactDisk(spec))(ctx);
}

// ---- merge

/** Writes a differencing disk's data into its parent and deletes the child (as Hyper-V does). Answers the parent. */
export async function prepareMergeDisk(spec: DiskPathSpec): Promise<DiskWork> {
  const path = resolve(spec.path);
  const info = await mustBeHealthy(path);
  const parent = info.parents[0];
  if (info.type !== 'differencing' || parent === undefined) {
    throw invalidValue('path', `"${path}" is not a differencing disk; there is nothing to merge.`);
  }
  return async (ctx) => {
    ctx.progress(0, 'Merging into the parent');
    switch (info.format) {
      case 'vhdx':
        await vhdx.mergeIntoParent(path, ctx);
        await unlink(path);
        break;
      case 'vhd':
        await vhd.mergeIntoParent(path, ctx, { removeChild: true });
        break;
      default:
        await qemuImgWithProgress(['commit', '-f', QEMU_FORMAT[info.format], '-d', path], ctx, 'Merging into the parent');
        await unlink(path);
    }
    ctx.progress(1, 'Merged');
    return inspectDisk(parent.path);
  };
}

export async function mergeDisk(spec: DiskPathSpec, ctx: OperationContext): Promise<DiskInfo> {
  return (await prepareMergeDisk(spec))(ctx);
}

// ---- helpers

const run = promisify(execFile);

/** Bytes the file occupies on the host (sparse files count only what is allocated). */
async function allocatedBytes(path: string): Promise<number> {
  const s = await stat(path);
  return s.blocks * 512;
}

function fromQemuFormat(name: string): DiskFormat {
  if (name === 'vpc') return 'vhd';
  if (name === 'vhdx' || name === 'qcow2') return name;
  return 'raw';
}

/** A context whose 0..1 maps to [from, to] of the outer one. */
function scaled(ctx: OperationContext, from: number, to: number): OperationContext {
  return { signal: ctx.signal, progress: (f, message) => ctx.progress(from + (to - from) * f, message) };
}

async function mustBeHealthy(path: string): Promise<DiskInfo & { virtualSize: number }> {
  await mustExist(path, 'path');
  const info = await inspectDisk(path);
  if (!info.health.ok || info.virtualSize === null) {
    throw new VisorError('conflict', 'disk-unhealthy', `Cannot change "${path}": ${info.health.findings.join(' ')}`, { field: 'path', hint: `See "visor disk inspect ${path}".` });
  }
  return info as DiskInfo & { virtualSize: number };
}

async function mustExist(path: string, field: string): Promise<void> {
  const s = await stat(path).catch(() => undefined);
  if (!s) throw new VisorError('not-found', 'disk-not-found', `No disk exists at "${path}".`, { field });
  if (!s.isFile()) throw invalidValue(field, `"${path}" is not a regular file.`, 'Disk operations work on image files; a host block device is attached with --passthrough.');
}

async function mustNotExist(path: string, field: string): Promise<void> {
  if (await stat(path).catch(() => undefined)) {
    throw new VisorError('conflict', 'file-exists', `A file already exists at "${path}".`, { field, hint: 'Choose another path, or delete that file first.' });
  }
}

async function folderMustExist(path: string, field: string): Promise<void> {
  const s = await stat(dirname(path)).catch(() => undefined);
  if (!s?.isDirectory()) throw new VisorError('not-found', 'folder-not-found', `No folder exists at "${dirname(path)}".`, { field });
}

function invalidValue(field: string, message: string, hint?: string): VisorError {
  return new VisorError('invalid', 'invalid-value', message, { field, hint });
}

function fileError(path: string, error: unknown): VisorError {
  if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new VisorError('not-found', 'disk-not-found', `No disk exists at "${path}".`, { field: 'path' });
  return new VisorError('failed', 'disk-read-failed', `Cannot read "${path}": ${(error as Error).message}`, { cause: error });
}
