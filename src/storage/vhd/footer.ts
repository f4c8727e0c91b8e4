/**
 * The hard disk footer (spec "Hard Disk Footer Format"): 512 bytes, big-endian, at the end of
 * every VHD and — for dynamic and differencing disks — copied at offset 0. It holds the disk
 * type, the virtual size, a CHS geometry and the unique id a child uses to name its parent.
 */
import { quote, vhdError } from './errors.js';
import { MAX_VIRTUAL_SIZE, SECTOR_SIZE } from './layout.js';

export const FOOTER_SIZE = 512;
/** "conectix" — Connectix, who made Virtual PC. */
export const FOOTER_COOKIE = Buffer.from('conectix', 'ascii');
/** Features: bit 1 ("reserved") must always be set; bit 0 marks a temporary disk. */
export const FEATURES_RESERVED = 0x0000_0002;
/** File format version 1.0. */
export const FILE_FORMAT_VERSION = 0x0001_0000;
/** Data offset of a fixed disk: there is no dynamic header. */
export const NO_DATA_OFFSET = 0xffff_ffff_ffff_ffffn;

export const DISK_TYPE_FIXED = 2;
export const DISK_TYPE_DYNAMIC = 3;
export const DISK_TYPE_DIFFERENCING = 4;
export type VhdDiskType = 'fixed' | 'dynamic' | 'differencing';
const DISK_TYPES: Record<number, VhdDiskType> = {
  [DISK_TYPE_FIXED]: 'fixed',
  [DISK_TYPE_DYNAMIC]: 'dynamic',
  [DISK_TYPE_DIFFERENCING]: 'differencing',
};
export const DISK_TYPE_CODES: Record<VhdDiskType, number> = { fixed: 2, dynamic: 3, differencing: 4 };

/** Creator host OS codes. */
export const HOST_OS_WINDOWS = 0x5769_326b; // "Wi2k"
export const HOST_OS_MACINTOSH = 0x4d61_6320; // "Mac "

/** Field offsets. */
const OFF_COOKIE = 0;
const OFF_FEATURES = 8;
const OFF_VERSION = 12;
const OFF_DATA_OFFSET = 16;
const OFF_TIMESTAMP = 24;
const OFF_CREATOR_APP = 28;
const OFF_CREATOR_VERSION = 32;
const OFF_CREATOR_HOST_OS = 36;
const OFF_ORIGINAL_SIZE = 40;
const OFF_CURRENT_SIZE = 48;
const OFF_CYLINDERS = 56;
const OFF_HEADS = 58;
const OFF_SECTORS_PER_TRACK = 59;
const OFF_DISK_TYPE = 60;
export const OFF_CHECKSUM = 64;
const OFF_UNIQUE_ID = 68;
const OFF_SAVED_STATE = 84;
export const UNIQUE_ID_SIZE = 16;

export interface ChsGeometry {
  readonly cylinders: number;
  readonly heads: number;
  readonly sectorsPerTrack: number;
}

export interface VhdFooter {
  readonly features: number;
  /** Absolute offset of the dynamic header; undefined for a fixed disk. */
  readonly dataOffset: number | undefined;
  /** Seconds since 2000-01-01T00:00:00Z. */
  readonly timestamp: number;
  /** Four ASCII characters: "vpc ", "win ", "qemu", "qem2", "d2v "... */
  readonly creatorApplication: string;
  readonly creatorVersion: number;
  readonly creatorHostOs: number;
  readonly originalSize: number;
  /** The virtual size in bytes. Hyper-V and Visor read this field; Virtual PC the geometry. */
  readonly currentSize: number;
  readonly geometry: ChsGeometry;
  readonly diskType: VhdDiskType;
  /** 16 bytes as 32 lowercase hex digits, in file order. */
  readonly uniqueId: string;
  readonly savedState: boolean;
}

/** The one's complement of the byte sum of `buf`, skipping the 4 checksum bytes at `skip`. */
export function vhdChecksum(buf: Uint8Array, skip: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) if (i < skip || i >= skip + 4) sum += buf[i]!;
  return ~sum >>> 0;
}

/**
 * The CHS geometry the spec's algorithm ("CHS Calculation", appendix) gives for `size` bytes;
 * sizes past 65535 x 16 x 255 sectors get that maximum.
 */
export function chsGeometry(size: number): ChsGeometry {
  let totalSectors = Math.floor(size / SECTOR_SIZE);
  if (totalSectors > 65535 * 16 * 255) totalSectors = 65535 * 16 * 255;
  let sectorsPerTrack: number;
  let heads: number;
  let cylinderTimesHeads: number;
  if (totalSectors >= 65535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
  } else {
    sectorsPerTrack = 17;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    heads = Math.floor((cylinderTimesHeads + 1023) / 1024);
    if (heads < 4) heads = 4;
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack };
}

/** Bytes the geometry addresses (what Virtual PC, and QEMU for "vpc "/"qemu" files, show). */
export function geometrySize(g: ChsGeometry): number {
  return g.cylinders * g.heads * g.sectorsPerTrack * SECTOR_SIZE;
}

/**
 * Parses and checks a footer. `where` names the copy in messages ("the footer at the end").
 * Throws vhd-bad-cookie, vhd-bad-checksum, vhd-unsupported-version, vhd-unsupported-type or
 * vhd-absurd-size.
 */
export function parseFooter(buf: Buffer, where = 'the footer'): VhdFooter {
  if (buf.length < FOOTER_SIZE) {
    throw vhdError('vhd-truncated', `${cap(where)} is ${buf.length} bytes, shorter than 512.`, { length: buf.length });
  }
  const cookie = buf.subarray(OFF_COOKIE, OFF_COOKIE + 8);
  if (!cookie.equals(FOOTER_COOKIE)) {
    throw vhdError('vhd-bad-cookie', `${cap(where)} starts with ${JSON.stringify(cookie.toString('latin1'))}, not "conectix".`, {
      cookie: cookie.toString('hex'),
    });
  }
  const stored = buf.readUInt32BE(OFF_CHECKSUM);
  const computed = vhdChecksum(buf.subarray(0, FOOTER_SIZE), OFF_CHECKSUM);
  if (stored !== computed) {
    throw vhdError('vhd-bad-checksum', `${cap(where)} has checksum 0x${hex32(stored)}, but its bytes sum to 0x${hex32(computed)}.`, {
      stored,
      computed,
    });
  }
  const version = buf.readUInt32BE(OFF_VERSION);
  if (version >>> 16 !== FILE_FORMAT_VERSION >>> 16) {
    throw vhdError('vhd-unsupported-version', `${cap(where)} has file format version 0x${hex32(version)}; only 1.x (0x00010000) is known.`, {
      version,
    });
  }
  const typeCode = buf.readUInt32BE(OFF_DISK_TYPE);
  const diskType = DISK_TYPES[typeCode];
  if (diskType === undefined) {
    throw vhdError('vhd-unsupported-type', `${cap(where)} has disk type ${typeCode}; only 2 (fixed), 3 (dynamic) and 4 (differencing) exist.`, {
      diskType: typeCode,
    });
  }
  const currentSize = buf.readBigUInt64BE(OFF_CURRENT_SIZE);
  if (currentSize === 0n || currentSize % BigInt(SECTOR_SIZE) !== 0n || currentSize > BigInt(MAX_VIRTUAL_SIZE)) {
    throw vhdError(
      'vhd-absurd-size',
      `${cap(where)} gives a virtual size of ${quote(currentSize)} bytes; it must be a positive multiple of 512 up to 2040 GiB.`,
      { currentSize: currentSize.toString() },
    );
  }
  const rawDataOffset = buf.readBigUInt64BE(OFF_DATA_OFFSET);
  const originalSize = buf.readBigUInt64BE(OFF_ORIGINAL_SIZE);
  return {
    features: buf.readUInt32BE(OFF_FEATURES),
    dataOffset: rawDataOffset === NO_DATA_OFFSET || rawDataOffset > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(rawDataOffset),
    timestamp: buf.readUInt32BE(OFF_TIMESTAMP),
    creatorApplication: buf.subarray(OFF_CREATOR_APP, OFF_CREATOR_APP + 4).toString('latin1'),
    creatorVersion: buf.readUInt32BE(OFF_CREATOR_VERSION),
    creatorHostOs: buf.readUInt32BE(OFF_CREATOR_HOST_OS),
    originalSize: originalSize > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(originalSize),
    currentSize: Number(currentSize),
    geometry: {
      cylinders: buf.readUInt16BE(OFF_CYLINDERS),
      heads: buf.readUInt8(OFF_HEADS),
      sectorsPerTrack: buf.readUInt8(OFF_SECTORS_PER_TRACK),
    },
    diskType,
    uniqueId: buf.subarray(OFF_UNIQUE_ID, OFF_UNIQUE_ID + UNIQUE_ID_SIZE).toString('hex'),
    savedState: buf.readUInt8(OFF_SAVED_STATE) !== 0,
  };
}

/** Encodes a footer with its checksum. */
export function encodeFooter(f: VhdFooter): Buffer {
  const buf = Buffer.alloc(FOOTER_SIZE);
  FOOTER_COOKIE.copy(buf, OFF_COOKIE);
  buf.writeUInt32BE(f.features >>> 0, OFF_FEATURES);
  buf.writeUInt32BE(FILE_FORMAT_VERSION, OFF_VERSION);
  buf.writeBigUInt64BE(f.dataOffset === undefined ? NO_DATA_OFFSET : BigInt(f.dataOffset), OFF_DATA_OFFSET);
  buf.writeUInt32BE(f.timestamp >>> 0, OFF_TIMESTAMP);
  buf.write(f.creatorApplication.padEnd(4, ' ').slice(0, 4), OFF_CREATOR_APP, 'latin1');
  buf.writeUInt32BE(f.creatorVersion >>> 0, OFF_CREATOR_VERSION);
  buf.writeUInt32BE(f.creatorHostOs >>> 0, OFF_CREATOR_HOST_OS);
  buf.writeBigUInt64BE(BigInt(f.originalSize), OFF_ORIGINAL_SIZE);
  buf.writeBigUInt64BE(BigInt(f.currentSize), OFF_CURRENT_SIZE);
  buf.writeUInt16BE(f.geometry.cylinders, OFF_CYLINDERS);
  buf.writeUInt8(f.geometry.heads, OFF_HEADS);
  buf.writeUInt8(f.geometry.sectorsPerTrack, OFF_SECTORS_PER_TRACK);
  buf.writeUInt32BE(DISK_TYPE_CODES[f.diskType], OFF_DISK_TYPE);
  Buffer.from(f.uniqueId, 'hex').copy(buf, OFF_UNIQUE_ID, 0, UNIQUE_ID_SIZE);
  buf.writeUInt8(f.savedState ? 1 : 0, OFF_SAVED_STATE);
  buf.writeUInt32BE(vhdChecksum(buf, OFF_CHECKSUM), OFF_CHECKSUM);
  return buf;
}

function cap(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function hex32(value: number): string {
  return value.toString(16).padStart(8, '0');
}
