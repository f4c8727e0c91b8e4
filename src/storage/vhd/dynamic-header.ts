/**
 * The dynamic disk header (spec "Dynamic Disk Header Format"): 1024 bytes, big-endian, at the
 * footer's data offset of every dynamic and differencing disk. It places the BAT, fixes the
 * block size and, for a differencing disk, names the parent: its unique id, its file name
 * (UTF-16BE) and up to eight platform-specific locators.
 */
import { vhdChecksum, hex32, UNIQUE_ID_SIZE } from './footer.js';
import { quote, vhdError } from './errors.js';
import { MiB, SECTOR_SIZE } from './layout.js';

export const DYNAMIC_HEADER_SIZE = 1024;
/** "cxsparse" — Connectix sparse. */
export const DYNAMIC_HEADER_COOKIE = Buffer.from('cxsparse', 'ascii');
export const HEADER_VERSION = 0x0001_0000;
/** The spec's default block size, and the only one Virtual PC uses. */
export const DEFAULT_BLOCK_SIZE = 2 * MiB;
export const MIN_BLOCK_SIZE = SECTOR_SIZE;
export const MAX_BLOCK_SIZE = 256 * MiB;
export const PARENT_LOCATOR_COUNT = 8;
export const PARENT_LOCATOR_ENTRY_SIZE = 24;
/** Bytes for the parent's name: 256 UTF-16 code units. */
export const PARENT_NAME_SIZE = 512;

const OFF_COOKIE = 0;
const OFF_DATA_OFFSET = 8;
const OFF_TABLE_OFFSET = 16;
const OFF_HEADER_VERSION = 24;
const OFF_MAX_TABLE_ENTRIES = 28;
const OFF_BLOCK_SIZE = 32;
export const OFF_HEADER_CHECKSUM = 36;
const OFF_PARENT_UNIQUE_ID = 40;
const OFF_PARENT_TIMESTAMP = 56;
const OFF_PARENT_NAME = 64;
const OFF_PARENT_LOCATORS = 576;

/** One parent locator entry as stored (its data lives elsewhere in the file). */
export interface ParentLocatorEntry {
  /** Platform code: W2ru, W2ku, Mac, MacX, Wi2r, Wi2k (see parent-locator.ts), or 0 for none. */
  readonly platformCode: number;
  /** Space reserved for the data; in sectors per the spec, in bytes in files Windows writes. */
  readonly platformDataSpace: number;
  readonly platformDataLength: number;
  readonly platformDataOffset: number;
}

export interface DynamicHeader {
  /** Absolute offset of the BAT. */
  readonly tableOffset: number;
  readonly maxTableEntries: number;
  readonly blockSize: number;
  /** 32 hex digits: the unique id of the parent's footer (all zeros when there is none). */
  readonly parentUniqueId: string;
  readonly parentTimestamp: number;
  readonly parentName: string;
  readonly locators: readonly ParentLocatorEntry[];
}

/** Parses and checks a dynamic header read from `fileSize`-byte file. */
export function parseDynamicHeader(buf: Buffer, fileSize: number): DynamicHeader {
  if (buf.length < DYNAMIC_HEADER_SIZE) {
    throw vhdError('vhd-truncated', `The dynamic header is ${buf.length} bytes, shorter than 1024.`, { length: buf.length });
  }
  const cookie = buf.subarray(OFF_COOKIE, OFF_COOKIE + 8);
  if (!cookie.equals(DYNAMIC_HEADER_COOKIE)) {
    throw vhdError('vhd-bad-cookie', `The dynamic header starts with ${JSON.stringify(cookie.toString('latin1'))}, not "cxsparse".`, {
      cookie: cookie.toString('hex'),
    });
  }
  const stored = buf.readUInt32BE(OFF_HEADER_CHECKSUM);
  const computed = vhdChecksum(buf.subarray(0, DYNAMIC_HEADER_SIZE), OFF_HEADER_CHECKSUM);
  if (stored !== computed) {
    throw vhdError('vhd-bad-checksum', `The dynamic header has checksum 0x${hex32(stored)}, but its bytes sum to 0x${hex32(computed)}.`, {
      stored,
      computed,
    });
  }
  const version = buf.readUInt32BE(OFF_HEADER_VERSION);
  if (version >>> 16 !== HEADER_VERSION >>> 16) {
    throw vhdError('vhd-unsupported-version', `The dynamic header has version 0x${hex32(version)}; only 1.x (0x00010000) is known.`, {
      version,
    });
  }
  const blockSize = buf.readUInt32BE(OFF_BLOCK_SIZE);
  if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw vhdError('vhd-bad-block-size', `The block size is ${quote(blockSize)}; it must be a power of two from 512 bytes to 256 MiB.`, {
      blockSize,
    });
  }
  const tableOffset = buf.readBigUInt64BE(OFF_TABLE_OFFSET);
  const maxTableEntries = buf.readUInt32BE(OFF_MAX_TABLE_ENTRIES);
  if (tableOffset % BigInt(SECTOR_SIZE) !== 0n || tableOffset + BigInt(maxTableEntries) * 4n > BigInt(fileSize)) {
    throw vhdError(
      'vhd-bat-out-of-range',
      `The BAT at offset ${quote(tableOffset)} with ${quote(maxTableEntries)} entries does not fit sector-aligned in the ${quote(fileSize)}-byte file.`,
      { tableOffset: tableOffset.toString(), maxTableEntries, fileSize },
    );
  }
  const locators: ParentLocatorEntry[] = [];
  for (let i = 0; i < PARENT_LOCATOR_COUNT; i++) {
    const at = OFF_PARENT_LOCATORS + i * PARENT_LOCATOR_ENTRY_SIZE;
    const offset = buf.readBigUInt64BE(at + 16);
    locators.push({
      platformCode: buf.readUInt32BE(at),
      platformDataSpace: buf.readUInt32BE(at + 4),
      platformDataLength: buf.readUInt32BE(at + 8),
      platformDataOffset: offset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(offset),
    });
  }
  return {
    tableOffset: Number(tableOffset),
    maxTableEntries,
    blockSize,
    parentUniqueId: buf.subarray(OFF_PARENT_UNIQUE_ID, OFF_PARENT_UNIQUE_ID + UNIQUE_ID_SIZE).toString('hex'),
    parentTimestamp: buf.readUInt32BE(OFF_PARENT_TIMESTAMP),
    parentName: decodeUtf16Be(buf.subarray(OFF_PARENT_NAME, OFF_PARENT_NAME + PARENT_NAME_SIZE)),
    locators,
  };
}

export function encodeDynamicHeader(h: DynamicHeader): Buffer {
  const buf = Buffer.alloc(DYNAMIC_HEADER_SIZE);
  DYNAMIC_HEADER_COOKIE.copy(buf, OFF_COOKIE);
  buf.writeBigUInt64BE(0xffff_ffff_ffff_ffffn, OFF_DATA_OFFSET);
  buf.writeBigUInt64BE(BigInt(h.tableOffset), OFF_TABLE_OFFSET);
  buf.writeUInt32BE(HEADER_VERSION, OFF_HEADER_VERSION);
  buf.writeUInt32BE(h.maxTableEntries, OFF_MAX_TABLE_ENTRIES);
  buf.writeUInt32BE(h.blockSize, OFF_BLOCK_SIZE);
  Buffer.from(h.parentUniqueId, 'hex').copy(buf, OFF_PARENT_UNIQUE_ID, 0, UNIQUE_ID_SIZE);
  buf.writeUInt32BE(h.parentTimestamp >>> 0, OFF_PARENT_TIMESTAMP);
  encodeUtf16Be(h.parentName, PARENT_NAME_SIZE).copy(buf, OFF_PARENT_NAME);
  h.locators.slice(0, PARENT_LOCATOR_COUNT).forEach((l, i) => {
    const at = OFF_PARENT_LOCATORS + i * PARENT_LOCATOR_ENTRY_SIZE;
    buf.writeUInt32BE(l.platformCode >>> 0, at);
    buf.writeUInt32BE(l.platformDataSpace >>> 0, at + 4);
    buf.writeUInt32BE(l.platformDataLength >>> 0, at + 8);
    buf.writeBigUInt64BE(BigInt(l.platformDataOffset), at + 16);
  });
  buf.writeUInt32BE(vhdChecksum(buf, OFF_HEADER_CHECKSUM), OFF_HEADER_CHECKSUM);
  return buf;
}

/** UTF-16BE up to the first NUL. */
export function decodeUtf16Be(buf: Buffer): string {
  const even = buf.subarray(0, buf.length & ~1);
  const swapped = Buffer.from(even).swap16();
  const text = swapped.toString('utf16le');
  const nul = text.indexOf('\0');
  return nul < 0 ? text : text.slice(0, nul);
}

/** UTF-16BE, NUL-padded to `size` bytes (longer names are cut at a code unit boundary). */
export function encodeUtf16Be(text: string, size: number): Buffer {
  const le = Buffer.from(text, 'utf16le');
  const out = Buffer.alloc(size);
  le.copy(out, 0, 0, Math.min(le.length, size) & ~1);
  return out.swap16();
}
