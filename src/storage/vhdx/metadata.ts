/**
 * The metadata region (MS-VHDX 2.6): a 64 KiB table ("metadata" signature, up to 2047 32-byte
 * entries) followed by the items it points to. The known items give the block size, the
 * virtual size, the sector sizes, the disk's page 83 identifier and, for differencing disks,
 * the parent locator.
 */
import { vhdxError, quote } from './errors.js';
import { readGuid, writeGuid, type Guid } from './guid.js';
import { KiB, MAX_VIRTUAL_DISK_SIZE, MiB } from './layout.js';
import { parseParentLocator, type ParentLocator } from './parent-locator.js';

/** "metadata" read as a little-endian u64. */
export const METADATA_TABLE_SIGNATURE = 0x61746164_6174656dn;
export const METADATA_TABLE_SIZE = 64 * KiB;
export const MAX_METADATA_ENTRIES = 2047;
export const MAX_METADATA_ITEM_SIZE = 1 * MiB;
const HEADER_LENGTH = 32;
const ENTRY_LENGTH = 32;

export const FILE_PARAMETERS_GUID: Guid = 'caa16737-fa36-4d43-b3b6-33f0aa44e76b';
export const VIRTUAL_DISK_SIZE_GUID: Guid = '2fa54224-cd1b-4876-b211-5dbed83bf4b8';
export const VIRTUAL_DISK_ID_GUID: Guid = 'beca12ab-b2e6-4523-93ef-c309e000c746';
export const LOGICAL_SECTOR_SIZE_GUID: Guid = '8141bf1d-a96f-4709-ba47-f233a8faab5f';
export const PHYSICAL_SECTOR_SIZE_GUID: Guid = 'cda348c7-445d-4471-9cc9-e9885251c556';
export const PARENT_LOCATOR_GUID: Guid = 'a8d35f2d-b30b-454d-abf7-d3d84834ab0c';

export const MIN_BLOCK_SIZE = 1 * MiB;
export const MAX_BLOCK_SIZE = 256 * MiB;
export const SECTOR_SIZES = [512, 4096] as const;

const FLAG_IS_USER = 1;
const FLAG_IS_VIRTUAL_DISK = 2;
const FLAG_IS_REQUIRED = 4;

export interface MetadataEntry {
  readonly itemId: Guid;
  readonly offset: number;
  readonly length: number;
  readonly isUser: boolean;
  readonly isVirtualDisk: boolean;
  readonly isRequired: boolean;
}

export interface VhdxMetadata {
  readonly blockSize: number;
  readonly leaveBlocksAllocated: boolean;
  readonly hasParent: boolean;
  readonly virtualDiskSize: number;
  /** The Virtual Disk ID: the SCSI page 83 identifier guests see. */
  readonly virtualDiskId: Guid;
  readonly logicalSectorSize: 512 | 4096;
  readonly physicalSectorSize: 512 | 4096;
  readonly parentLocator?: ParentLocator;
}

const KNOWN_ITEMS = new Set([
  FILE_PARAMETERS_GUID,
  VIRTUAL_DISK_SIZE_GUID,
  VIRTUAL_DISK_ID_GUID,
  LOGICAL_SECTOR_SIZE_GUID,
  PHYSICAL_SECTOR_SIZE_GUID,
  PARENT_LOCATOR_GUID,
]);

export function parseMetadataTable(region: Buffer): MetadataEntry[] {
  if (region.length < METADATA_TABLE_SIZE) {
    throw vhdxError('vhdx-truncated', `The metadata region is ${region.length} bytes, smaller than its 64 KiB table.`);
  }
  const signature = region.readBigUInt64LE(0);
  if (signature !== METADATA_TABLE_SIGNATURE) {
    const ascii = region.subarray(0, 8).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
    throw vhdxError(
      'vhdx-bad-signature',
      `The metadata table's signature reads "${ascii}", not "metadata".`,
      { structure: 'metadata-table', found: ascii },
    );
  }
  const count = region.readUInt16LE(10);
  if (count > MAX_METADATA_ENTRIES) {
    throw vhdxError('vhdx-bad-metadata-table', `The metadata table claims ${count} entries; at most ${MAX_METADATA_ENTRIES} are allowed.`, {
      entryCount: count,
    });
  }
  const entries: MetadataEntry[] = [];
  const seen = new Set<string>();
  let userCount = 0;
  for (let i = 0; i < count; i++) {
    const at = HEADER_LENGTH + i * ENTRY_LENGTH;
    const flags = region.readUInt32LE(at + 24);
    const entry: MetadataEntry = {
      itemId: readGuid(region, at),
      offset: region.readUInt32LE(at + 16),
      length: region.readUInt32LE(at + 20),
      isUser: (flags & FLAG_IS_USER) !== 0,
      isVirtualDisk: (flags & FLAG_IS_VIRTUAL_DISK) !== 0,
      isRequired: (flags & FLAG_IS_REQUIRED) !== 0,
    };
    const key = `${entry.itemId}/${entry.isUser}`;
    if (seen.has(key)) {
      throw vhdxError('vhdx-bad-metadata-table', `Metadata item ${entry.itemId} appears twice.`, { itemId: entry.itemId });
    }
    seen.add(key);
    if (entry.isUser && ++userCount > 1024) {
      throw vhdxError('vhdx-bad-metadata-table', 'More than 1024 metadata entries are marked IsUser.');
    }
    const empty = entry.length === 0 && entry.offset === 0;
    if (
      !empty &&
      (entry.offset < METADATA_TABLE_SIZE ||
        entry.length > MAX_METADATA_ITEM_SIZE ||
        entry.length === 0 ||
        entry.offset + entry.length > region.length)
    ) {
      throw vhdxError(
        'vhdx-bad-metadata-table',
        `Metadata item ${entry.itemId} is at offset ${quote(entry.offset)} with length ${quote(entry.length)}, outside the ${quote(region.length)}-byte metadata region or inside its table.`,
        { itemId: entry.itemId, offset: entry.offset, length: entry.length },
      );
    }
    if (entry.isRequired && !entry.isUser && !KNOWN_ITEMS.has(entry.itemId)) {
      throw vhdxError(
        'vhdx-unknown-required-metadata',
        `The file requires metadata item ${entry.itemId}, which this implementation does not know.`,
        { itemId: entry.itemId },
        'The file was written by a newer VHDX implementation; open it with the program that made it.',
      );
    }
    entries.push(entry);
  }
  const sorted = entries.filter((e) => e.length > 0).sort((x, y) => x.offset - y.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const next = sorted[i]!;
    if (prev.offset + prev.length > next.offset) {
      throw vhdxError(
        'vhdx-bad-metadata-table',
        `Metadata items ${prev.itemId} and ${next.itemId} overlap at offset ${quote(next.offset)}.`,
        { first: prev.itemId, second: next.itemId },
      );
    }
  }
  return entries;
}

function item(region: Buffer, entries: MetadataEntry[], id: Guid, name: string, size: number): Buffer {
  const entry = entries.find((e) => e.itemId === id && !e.isUser);
  if (!entry) {
    throw vhdxError('vhdx-missing-metadata', `The required metadata item ${name} (${id}) is missing.`, { itemId: id });
  }
  if (entry.length < size) {
    throw vhdxError(
      'vhdx-bad-metadata-table',
      `The metadata item ${name} is ${entry.length} bytes long; it needs ${size}.`,
      { itemId: id, length: entry.length },
    );
  }
  return region.subarray(entry.offset, entry.offset + entry.length);
}

/** Parses the whole metadata region into the known items, validating each (2.6.2). */
export function parseMetadataRegion(region: Buffer): VhdxMetadata {
  const entries = parseMetadataTable(region);
  const params = item(region, entries, FILE_PARAMETERS_GUID, 'File Parameters', 8);
  const blockSize = params.readUInt32LE(0);
  const flags = params.readUInt32LE(4);
  if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw vhdxError(
      'vhdx-bad-block-size',
      `The block size is ${quote(blockSize)} bytes; it must be a power of two from 1 MiB to 256 MiB.`,
      { blockSize },
    );
  }
  const logicalSectorSize = item(region, entries, LOGICAL_SECTOR_SIZE_GUID, 'Logical Sector Size', 4).readUInt32LE(0);
  const physicalSectorSize = item(region, entries, PHYSICAL_SECTOR_SIZE_GUID, 'Physical Sector Size', 4).readUInt32LE(0);
  for (const [name, value] of [
    ['logical', logicalSectorSize],
    ['physical', physicalSectorSize],
  ] as const) {
    if (value !== 512 && value !== 4096) {
      throw vhdxError('vhdx-bad-sector-size', `The ${name} sector size is ${value} bytes; it must be 512 or 4096.`, {
        [name]: value,
      });
    }
  }
  const size = item(region, entries, VIRTUAL_DISK_SIZE_GUID, 'Virtual Disk Size', 8).readBigUInt64LE(0);
  if (size === 0n || size > BigInt(MAX_VIRTUAL_DISK_SIZE) || size % BigInt(logicalSectorSize) !== 0n) {
    throw vhdxError(
      'vhdx-absurd-size',
      `The virtual disk size is ${quote(size)} bytes; it must be a non-zero multiple of the ${logicalSectorSize}-byte sector, at most 64 TiB.`,
      { virtualDiskSize: String(size) },
    );
  }
  const virtualDiskId = readGuid(item(region, entries, VIRTUAL_DISK_ID_GUID, 'Virtual Disk ID', 16), 0);
  const hasParent = (flags & 2) !== 0;
  const base: VhdxMetadata = {
    blockSize,
    leaveBlocksAllocated: (flags & 1) !== 0,
    hasParent,
    virtualDiskSize: Number(size),
    virtualDiskId,
    logicalSectorSize: logicalSectorSize as 512 | 4096,
    physicalSectorSize: physicalSectorSize as 512 | 4096,
  };
  if (!hasParent) return base;
  const locator = parseParentLocator(item(region, entries, PARENT_LOCATOR_GUID, 'Parent Locator', 20));
  return { ...base, parentLocator: locator };
}

export interface MetadataItemSource {
  readonly itemId: Guid;
  readonly data: Buffer;
  readonly isVirtualDisk: boolean;
  readonly isRequired: boolean;
}

/** The known items of `meta`, encoded, with the flags Table 2.6.2 gives them. */
export function metadataItems(meta: VhdxMetadata, parentLocator?: Buffer): MetadataItemSource[] {
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return b;
  };
  const params = Buffer.alloc(8);
  params.writeUInt32LE(meta.blockSize, 0);
  params.writeUInt32LE((meta.leaveBlocksAllocated ? 1 : 0) | (meta.hasParent ? 2 : 0), 4);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(meta.virtualDiskSize));
  const id = Buffer.alloc(16);
  writeGuid(id, 0, meta.virtualDiskId);
  const items: MetadataItemSource[] = [
    { itemId: FILE_PARAMETERS_GUID, data: params, isVirtualDisk: false, isRequired: true },
    { itemId: VIRTUAL_DISK_SIZE_GUID, data: size, isVirtualDisk: true, isRequired: true },
    { itemId: VIRTUAL_DISK_ID_GUID, data: id, isVirtualDisk: true, isRequired: true },
    { itemId: LOGICAL_SECTOR_SIZE_GUID, data: u32(meta.logicalSectorSize), isVirtualDisk: true, isRequired: true },
    { itemId: PHYSICAL_SECTOR_SIZE_GUID, data: u32(meta.physicalSectorSize), isVirtualDisk: true, isRequired: true },
  ];
  if (parentLocator) items.push({ itemId: PARENT_LOCATOR_GUID, data: parentLocator, isVirtualDisk: false, isRequired: true });
  return items;
}

/** Lays out a metadata region of `regionLength` bytes: table, then items packed after 64 KiB. */
export function encodeMetadataRegion(items: readonly MetadataItemSource[], regionLength: number): Buffer {
  const region = Buffer.alloc(regionLength);
  region.writeBigUInt64LE(METADATA_TABLE_SIGNATURE, 0);
  region.writeUInt16LE(items.length, 10);
  let cursor = METADATA_TABLE_SIZE;
  items.forEach((it, i) => {
    const at = HEADER_LENGTH + i * ENTRY_LENGTH;
    writeGuid(region, at, it.itemId);
    region.writeUInt32LE(cursor, at + 16);
    region.writeUInt32LE(it.data.length, at + 20);
    region.writeUInt32LE((it.isVirtualDisk ? FLAG_IS_VIRTUAL_DISK : 0) | (it.isRequired ? FLAG_IS_REQUIRED : 0), at + 24);
    it.data.copy(region, cursor);
    cursor += it.data.length;
  });
  return region;
}

/** Where the item `id` sits in the region, for in-place updates (Virtual Disk Size on resize). */
export function findMetadataItem(region: Buffer, id: Guid): MetadataEntry | undefined {
  return parseMetadataTable(region).find((e) => e.itemId === id && !e.isUser);
}
