/**
 * Parent locators (spec "Dynamic Disk Header Format", Parent Locator Entries): eight entries in
 * the dynamic header, each a platform code and the offset and length of its data elsewhere in
 * the file. The data is a path to the parent in the platform's form:
 *   W2ru  UTF-16LE path relative to the child ("..\base.vhd")       — Windows 2000 and later
 *   W2ku  UTF-16LE absolute path ("C:\vms\base.vhd")
 *   Wi2r  deprecated relative path, single-byte text
 *   Wi2k  deprecated absolute path, single-byte text
 *   MacX  UTF-8 file URL ("file://./base.vhd", "file:///vms/base.vhd")
 *   Mac   a Mac OS alias record (opaque; never used to find the parent here)
 */
import { basename, isAbsolute, join } from 'node:path';
import { quote, vhdError } from './errors.js';
import type { ParentLocatorEntry } from './dynamic-header.js';
import { alignUp, SECTOR_SIZE } from './layout.js';

export const PLATFORM_NONE = 0;
export const PLATFORM_WI2R = 0x5769_3272; // "Wi2r"
export const PLATFORM_WI2K = 0x5769_326b; // "Wi2k"
export const PLATFORM_W2RU = 0x5732_7275; // "W2ru"
export const PLATFORM_W2KU = 0x5732_6b75; // "W2ku"
export const PLATFORM_MAC = 0x4d61_6320; // "Mac "
export const PLATFORM_MACX = 0x4d61_6358; // "MacX"

/** Longer locator data than this is refused rather than read (a path is at most a few KiB). */
export const MAX_LOCATOR_DATA = 64 * 1024;
/** Windows drive letter we (and the VHDX library) map to the Linux root: "Z:\srv\a.vhd" is "/srv/a.vhd". */
export const LINUX_ROOT_DRIVE = 'Z:';

/** A parent locator with its data decoded. */
export interface ParentLocator {
  /** "W2ru", "W2ku", "MacX"... */
  readonly platform: string;
  /** The decoded path or URL; undefined for an opaque Mac alias. */
  readonly path: string | undefined;
}

export function platformName(code: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(code >>> 0);
  return /^[\x20-\x7e]{4}$/.test(b.toString('latin1')) ? b.toString('latin1').trimEnd() : `0x${code.toString(16)}`;
}

/** File bytes a locator's data occupies (its reserved space, sector-aligned). */
export function locatorExtent(entry: ParentLocatorEntry): { offset: number; length: number } {
  // The spec counts platformDataSpace in sectors; Windows and QEMU write bytes. Take the larger
  // reading that still makes sense, never less than the data itself.
  const asBytes = entry.platformDataSpace >= entry.platformDataLength ? entry.platformDataSpace : entry.platformDataSpace * SECTOR_SIZE;
  return { offset: entry.platformDataOffset, length: alignUp(Math.max(entry.platformDataLength, Math.min(asBytes, MAX_LOCATOR_DATA)), SECTOR_SIZE) };
}

/** Checks that a locator's data lies inside the file; throws vhd-bad-parent-locator. */
export function checkLocatorEntry(entry: ParentLocatorEntry, index: number, fileSize: number): void {
  if (entry.platformCode === PLATFORM_NONE) return;
  const name = platformName(entry.platformCode);
  if (entry.platformDataLength > MAX_LOCATOR_DATA) {
    throw vhdError(
      'vhd-bad-parent-locator',
      `Parent locator ${index} (${name}) claims ${quote(entry.platformDataLength)} bytes of data; more than 64 KiB is refused.`,
      { index, platformDataLength: entry.platformDataLength },
    );
  }
  if (entry.platformDataOffset + entry.platformDataLength > fileSize) {
    throw vhdError(
      'vhd-bad-parent-locator',
      `Parent locator ${index} (${name}) has its data at ${quote(entry.platformDataOffset)}+${entry.platformDataLength}, past the end of the ${quote(fileSize)}-byte file.`,
      { index, platformDataOffset: entry.platformDataOffset, platformDataLength: entry.platformDataLength, fileSize },
    );
  }
}

/** Decodes a locator's data by its platform code. */
export function decodeLocator(code: number, data: Buffer): ParentLocator {
  const platform = platformName(code);
  const strip = (s: string) => s.replace(/\0+$/, '');
  switch (code) {
    case PLATFORM_W2RU:
    case PLATFORM_W2KU:
      return { platform, path: strip(data.subarray(0, data.length & ~1).toString('utf16le')) };
    case PLATFORM_WI2R:
    case PLATFORM_WI2K:
      return { platform, path: strip(data.toString('latin1')) };
    case PLATFORM_MACX:
      return { platform, path: strip(data.toString('utf8')) };
    default:
      return { platform, path: undefined };
  }
}

/**
 * Where to look for the parent, in order: relative paths against the child's folder, absolute
 * paths that map to a Linux path ("Z:\..." or "/..."), MacX file URLs, and last — as libvhdi
 * does — each path's bare file name and the header's parent name beside the child. The caller
 * checks the parent's unique id.
 */
export function parentCandidates(childDir: string, locators: readonly ParentLocator[], parentName: string): string[] {
  const out: string[] = [];
  const posix = (p: string) => p.replace(/\\/g, '/');
  const order = ['W2ru', 'Wi2r', 'MacX', 'W2ku', 'Wi2k'];
  const sorted = [...locators].filter((l) => l.path).sort((a, b) => order.indexOf(a.platform) - order.indexOf(b.platform));
  const names: string[] = [];
  for (const l of sorted) {
    let p = l.path!;
    if (l.platform === 'MacX') {
      if (!p.startsWith('file://')) continue;
      try {
        p = decodeURIComponent(p.slice('file://'.length));
      } catch {
        continue;
      }
      out.push(isAbsolute(p) ? p : join(childDir, p));
      names.push(p);
      continue;
    }
    names.push(p);
    const drive = /^([A-Za-z]:)(\\.*)$/.exec(p.replace(/^\\\\\?\\/, ''));
    if (drive) {
      if (drive[1]!.toUpperCase() === LINUX_ROOT_DRIVE) out.push(posix(drive[2]!));
    } else if (p.startsWith('/')) {
      out.push(p);
    } else if (!p.startsWith('\\')) {
      out.push(join(childDir, posix(p)));
    }
  }
  for (const p of [...names, parentName]) {
    const base = basename(posix(p));
    if (base && base !== '.' && base !== '..') out.push(join(childDir, base));
  }
  return [...new Set(out)];
}

/** The Windows form we store for an absolute Linux path: "/srv/a.vhd" is "Z:\srv\a.vhd". */
export function win32PathFor(linuxPath: string): string {
  return `${LINUX_ROOT_DRIVE}${linuxPath.replace(/\//g, '\\')}`;
}

/** The locator data we write for a parent: W2ru (relative), W2ku (absolute) and MacX (relative URL). */
export function encodeLocators(relativePosix: string, absolutePosix: string): { code: number; data: Buffer }[] {
  let rel = relativePosix.replace(/\//g, '\\');
  if (!rel.startsWith('..')) rel = `.\\${rel}`;
  const relUrl = relativePosix.startsWith('..') ? relativePosix : `./${relativePosix}`;
  return [
    { code: PLATFORM_W2RU, data: Buffer.from(rel, 'utf16le') },
    { code: PLATFORM_W2KU, data: Buffer.from(win32PathFor(absolutePosix), 'utf16le') },
    { code: PLATFORM_MACX, data: Buffer.from(`file://${encodeURI(relUrl)}`, 'utf8') },
  ];
}
