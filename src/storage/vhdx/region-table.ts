/**
 * The region table (MS-VHDX 2.2.3): two 64 KiB copies at 192 KiB and 256 KiB, each a header and up
 * to 2047 entries locating the BAT and the metadata region. Updated only through the log.
 */
import { crc32cWithZeroedField } from './crc32c.js';
import { vhdxError, quote } from './errors.js';
import { readGuid, writeGuid, type Guid } from './guid.js';
import { ALIGNMENT, HEADER_SECTION_SIZE, KiB, REGION_TABLE_1_OFFSET, REGION_TABLE_2_OFFSET } from './layout.js';

/** "regi" read as a little-endian u32. */
export const REGION_TABLE_SIGNATURE = 0x69676572;
export const REGION_TABLE_SIZE = 64 * KiB;
export const REGION_TABLE_OFFSETS = [REGION_TABLE_1_OFFSET, REGION_TABLE_2_OFFSET] as const;
export const MAX_REGION_ENTRIES = 2047;
const HEADER_LENGTH = 16;
const ENTRY_LENGTH = 32;
const CHECKSUM_OFFSET = 4;

export const BAT_REGION_GUID: Guid = '2dc27766-f623-4200-9d64-115e9bfd4a08';
export const METADATA_REGION_GUID: Guid = '8b7ca206-4790-4b9a-b8fe-575f050f886e';
const KNOWN_REGIONS = new Set([BAT_REGION_GUID, METADATA_REGION_GUID]);

export interface RegionEntry {
  readonly guid: Guid;
  readonly fileOffset: number;
  readonly length: number;
  readonly required: boolean;
}

export interface RegionTable {
  readonly bat: RegionEntry;
  readonly metadata: RegionEntry;
  /** Every entry, known or not, in table order. */
  readonly entries: readonly RegionEntry[];
}

export function parseRegionTable(buf: Buffer, copy: 0 | 1 = 0): RegionTable {
  const where = `region table ${copy + 1} (offset ${REGION_TABLE_OFFSETS[copy]})`;
  if (buf.length < REGION_TABLE_SIZE) {
    throw vhdxError('vhdx-truncated', `The file ends inside ${where}.`, { structure: 'region-table' });
  }
  const signature = buf.readUInt32LE(0);
  if (signature !== REGION_TABLE_SIGNATURE) {
    throw vhdxError(
      'vhdx-bad-signature',
      `The signature of ${where} is 0x${signature.toString(16)}, not 0x${REGION_TABLE_SIGNATURE.toString(16)} ("regi").`,
      { structure: 'region-table', copy, found: signature },
    );
  }
  const stored = buf.readUInt32LE(CHECKSUM_OFFSET);
  const computed = crc32cWithZeroedField(buf.subarray(0, REGION_TABLE_SIZE), CHECKSUM_OFFSET);
  if (stored !== computed) {
    throw vhdxError(
      'vhdx-bad-checksum',
      `The CRC-32C of ${where} is 0x${stored.toString(16)}, but its contents sum to 0x${computed.toString(16)}.`,
      { structure: 'region-table', copy, stored, computed },
    );
  }
  const count = buf.readUInt32LE(8);
  if (count > MAX_REGION_ENTRIES) {
    throw vhdxError(
      'vhdx-bad-region-table',
      `The ${where} claims ${count} entries; at most ${MAX_REGION_ENTRIES} are allowed.`,
      { entryCount: count },
    );
  }
  const entries: RegionEntry[] = [];
  const seen = new Set<Guid>();
  for (let i = 0; i < count; i++) {
    const at = HEADER_LENGTH + i * ENTRY_LENGTH;
    const entry: RegionEntry = {
      guid: readGuid(buf, at),
      fileOffset: Number(buf.readBigUInt64LE(at + 16)),
      length: buf.readUInt32LE(at + 24),
      required: (buf.readUInt32LE(at + 28) & 1) === 1,
    };
    if (seen.has(entry.guid)) {
      throw vhdxError('vhdx-bad-region-table', `Region ${entry.guid} appears twice in the ${where}.`, {
        guid: entry.guid,
      });
    }
    seen.add(entry.guid);
    if (
      entry.fileOffset % ALIGNMENT !== 0 ||
      entry.fileOffset < HEADER_SECTION_SIZE ||
      entry.length % ALIGNMENT !== 0 ||
      !Number.isSafeInteger(entry.fileOffset + entry.length)
    ) {
      throw vhdxError(
        'vhdx-bad-region-table',
        `Region ${entry.guid} is at offset ${quote(entry.fileOffset)} with length ${quote(entry.length)}; both must be multiples of 1 MiB and the offset at least 1 MiB.`,
        { guid: entry.guid, fileOffset: entry.fileOffset, length: entry.length },
      );
    }
    if (!KNOWN_REGIONS.has(entry.guid) && entry.required) {
      throw vhdxError(
        'vhdx-unknown-required-region',
        `The file requires region ${entry.guid}, which this implementation does not know.`,
        { guid: entry.guid },
        'The file was written by a newer VHDX implementation; open it with the program that made it.',
      );
    }
    entries.push(entry);
  }
  const sorted = [...entries].filter((e) => e.length > 0).sort((x, y) => x.fileOffset - y.fileOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const next = sorted[i]!;
    if (prev.fileOffset + prev.length > next.fileOffset) {
      throw vhdxError(
        'vhdx-region-overlap',
        `Region ${prev.guid} (${quote(prev.fileOffset)}+${quote(prev.length)}) overlaps region ${next.guid} at ${quote(next.fileOffset)}.`,
        { first: prev.guid, second: next.guid },
      );
    }
  }
  const bat = entries.find((e) => e.guid === BAT_REGION_GUID);
  const metadata = entries.find((e) => e.guid === METADATA_REGION_GUID);
  if (!bat || !metadata) {
    throw vhdxError(
      'vhdx-missing-region',
      `The ${where} has no ${bat ? 'metadata region' : 'BAT region'} entry; both are required.`,
      { missing: bat ? METADATA_REGION_GUID : BAT_REGION_GUID },
    );
  }
  if (bat.length === 0 || metadata.length === 0) {
    throw vhdxError('vhdx-bad-region-table', `The ${bat.length === 0 ? 'BAT' : 'metadata'} region has length 0.`);
  }
  return { bat, metadata, entries };
}

export function encodeRegionTable(entries: readonly RegionEntry[]): Buffer {
  const buf = Buffer.alloc(REGION_TABLE_SIZE);
  buf.writeUInt32LE(REGION_TABLE_SIGNATURE, 0);
  buf.writeUInt32LE(entries.length, 8);
  entries.forEach((entry, i) => {
    const at = HEADER_LENGTH + i * ENTRY_LENGTH;
    writeGuid(buf, at, entry.guid);
    buf.writeBigUInt64LE(BigInt(entry.fileOffset), at + 16);
    buf.writeUInt32LE(entry.length, at + 24);
    buf.writeUInt32LE(entry.required ? 1 : 0, at + 28);
  });
  buf.writeUInt32LE(crc32cWithZeroedField(buf, CHECKSUM_OFFSET), CHECKSUM_OFFSET);
  return buf;
}
