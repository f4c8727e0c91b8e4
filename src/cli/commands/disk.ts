import { extname, resolve } from 'node:path';
import { formatSize, parseSize, type DiskJob, type VisorClient } from '../../api/index.js';
import type { DiskFormat, DiskInfo } from '../../core/index.js';
import { withClient } from '../connect.js';
import { EXIT } from '../exit-codes.js';
import { followJob } from '../follow-job.js';
import { printFields, printJson, usageError } from '../output.js';

interface JsonOption {
  json?: boolean;
}

const FORMATS: readonly DiskFormat[] = ['vhdx', 'vhd', 'qcow2', 'raw'];
const BY_EXTENSION: Record<string, DiskFormat> = { '.vhdx': 'vhdx', '.avhdx': 'vhdx', '.vhd': 'vhd', '.avhd': 'vhd', '.qcow2': 'qcow2', '.raw': 'raw', '.img': 'raw' };

/** --format, or the format the file name says (d.qcow2), or `fallback`. */
function formatOf(option: string | undefined, path: string, fallback?: DiskFormat): DiskFormat {
  if (option !== undefined) {
    if (!(FORMATS as readonly string[]).includes(option)) {
      throw usageError(`--format must be one of ${FORMATS.join(', ')}: current value is "${option}".`);
    }
    return option as DiskFormat;
  }
  const guessed = BY_EXTENSION[extname(path).toLowerCase()] ?? fallback;
  if (guessed === undefined) throw usageError(`Cannot tell the format from "${path}".`, `Give --format (${FORMATS.join(', ')}).`);
  return guessed;
}

async function diskJob(options: JsonOption, start: (c: VisorClient) => Promise<DiskJob>, said: (disk: DiskInfo) => string): Promise<number> {
  const disk = await withClient(async (c) => followJob<DiskInfo>(c, start(c), { quiet: options.json }));
  if (options.json) printJson(disk);
  else process.stdout.write(`${said(disk)}\n`);
  return EXIT.ok;
}

export async function newDisk(path: string, options: JsonOption & { size?: string; format?: string; fixed?: boolean; parent?: string }): Promise<number> {
  const abs = resolve(path);
  const format = formatOf(options.format, abs, 'vhdx');
  if (options.size === undefined && options.parent === undefined) throw usageError('A new disk needs --size (or --parent for a differencing disk).', 'For example: visor disk new d.vhdx --size 8G');
  return diskJob(
    options,
    (c) =>
      c.newDisk({
        path: abs,
        format,
        type: options.fixed ? 'fixed' : 'dynamic',
        ...(options.size !== undefined ? { size: parseSize(options.size, '--size') } : {}),
        ...(options.parent !== undefined ? { parent: resolve(options.parent) } : {}),
      }),
    (d) => `Created ${d.format} disk ${d.path} (${formatSize(d.virtualSize ?? 0)}${d.parents.length > 0 ? `, child of ${d.parents[0]!.path}` : ''}).`,
  );
}

export async function inspect(path: string, options: JsonOption): Promise<number> {
  const d = await withClient((c) => c.inspectDisk(resolve(path)));
  if (options.json) {
    printJson(d);
    return d.health.ok ? EXIT.ok : EXIT.failed;
  }
  const fields: Array<[string, string]> = [
    ['Path', d.path],
    ['Format', d.format],
    ['Type', d.type ?? '-'],
    ['Virtual size', d.virtualSize === null ? 'unknown' : `${formatSize(d.virtualSize)} (${d.virtualSize} bytes)`],
    ['Physical size', `${formatSize(d.physicalSize)} (${d.physicalSize} bytes)`],
    ['Block size', d.blockSize === null ? '-' : formatSize(d.blockSize)],
  ];
  if (d.parents.length === 0) fields.push(['Parents', 'none']);
  d.parents.forEach((p, i) => fields.push([i === 0 ? 'Parents' : '', `${p.format}  ${p.path}`]));
  fields.push(['Health', d.health.ok ? 'ok' : 'damaged']);
  d.health.findings.forEach((f) => fields.push(['', f]));
  printFields(fields);
  return d.health.ok ? EXIT.ok : EXIT.failed;
}

export async function convert(src: string, dst: string, options: JsonOption & { format?: string }): Promise<number> {
  const destination = resolve(dst);
  const format = formatOf(options.format, destination);
  return diskJob(
    options,
    (c) => c.convertDisk({ path: resolve(src), destination, format }),
    (d) => `Converted to ${d.format} disk ${d.path} (${formatSize(d.physicalSize)} on disk).`,
  );
}

export async function resize(path: string, options: JsonOption & { size?: string }): Promise<number> {
  if (options.size === undefined) throw usageError('Give the new size with --size.', 'For example: visor disk resize d.vhdx --size 16G');
  const size = parseSize(options.size, '--size');
  return diskJob(options, (c) => c.resizeDisk({ path: resolve(path), size }), (d) => `Resized ${d.path} to ${formatSize(d.virtualSize ?? 0)}.`);
}

export async function compact(path: string, options: JsonOption): Promise<number> {
  return diskJob(options, (c) => c.compactDisk({ path: resolve(path) }), (d) => `Compacted ${d.path}: ${formatSize(d.physicalSize)} on disk.`);
}

export async function merge(path: string, options: JsonOption): Promise<number> {
  return diskJob(options, (c) => c.mergeDisk({ path: resolve(path) }), (d) => `Merged ${path} into ${d.path}.`);
}
