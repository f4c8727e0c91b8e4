/**
 * The two 4 KiB headers at 64 KiB and 128 KiB (MS-VHDX 2.2.2). A header is valid when its
 * signature and CRC-32C check; the current one is the valid one with the greater SequenceNumber.
 * Headers are never updated through the log: the non-current slot is overwritten, then flushed.
 */
import { crc32cWithZeroedField } from './crc32c.js';
import { vhdxError, quote } from './errors.js';
import { readGuid, writeGuid, ZERO_GUID, type Guid } from './guid.js';
import { ALIGNMENT, HEADER_1_OFFSET, HEADER_2_OFFSET, HEADER_SECTION_SIZE, KiB } from './layout.js';

/** "head" read as a little-endian u32. */
export const HEADER_SIGNATURE = 0x64616568;
export const HEADER_SIZE = 4 * KiB;
export const HEADER_OFFSETS = [HEADER_1_OFFSET, HEADER_2_OFFSET] as const;
export const HEADER_VERSION = 1;
export const LOG_VERSION = 0;
const CHECKSUM_OFFSET = 4;

export interface VhdxHeader {
  readonly sequenceNumber: bigint;
  readonly fileWriteGuid: Guid;
  readonly dataWriteGuid: Guid;
  /** Zero when the log is empty; otherwise only log entries carrying it are valid. */
  readonly logGuid: Guid;
  readonly logVersion: number;
  readonly version: number;
  readonly logLength: number;
  readonly logOffset: number;
}

/** Parses one header slot; throws `vhdx-bad-signature` or `vhdx-bad-checksum`. */
export function parseHeader(buf: Buffer, slot: 0 | 1): VhdxHeader {
  const where = `header ${slot + 1} (offset ${HEADER_OFFSETS[slot]})`;
  if (buf.length < HEADER_SIZE) {
    throw vhdxError('vhdx-truncated', `The file ends inside ${where}.`, { structure: 'header', slot });
  }
  const signature = buf.readUInt32LE(0);
  if (signature !== HEADER_SIGNATURE) {
    throw vhdxError(
      'vhdx-bad-signature',
      `The signature of ${where} is 0x${signature.toString(16)}, not 0x${HEADER_SIGNATURE.toString(16)} ("head").`,
      { structure: 'header', slot, found: signature },
    );
  }
  const stored = buf.readUInt32LE(CHECKSUM_OFFSET);
  const computed = crc32cWithZeroedField(buf.subarray(0, HEADER_SIZE), CHECKSUM_OFFSET);
  if (stored !== computed) {
    throw vhdxError(
      'vhdx-bad-checksum',
      `The CRC-32C of ${where} is 0x${stored.toString(16)}, but its contents sum to 0x${computed.toString(16)}.`,
      { structure: 'header', slot, stored, computed },
    );
  }
  return {
    sequenceNumber: buf.readBigUInt64LE(8),
    fileWriteGuid: readGuid(buf, 16),
    dataWriteGuid: readGuid(buf, 32),
    logGuid: readGuid(buf, 48),
    logVersion: buf.readUInt16LE(64),
    version: buf.readUInt16LE(66),
    logLength: buf.readUInt32LE(68),
    logOffset: Number(buf.readBigUInt64LE(72)),
  };
}

export function encodeHeader(header: VhdxHeader): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE);
  buf.writeUInt32LE(HEADER_SIGNATURE, 0);
  buf.writeBigUInt64LE(header.sequenceNumber, 8);
  writeGuid(buf, 16, header.fileWriteGuid);
  writeGuid(buf, 32, header.dataWriteGuid);
  writeGuid(buf, 48, header.logGuid);
  buf.writeUInt16LE(header.logVersion, 64);
  buf.writeUInt16LE(header.version, 66);
  buf.writeUInt32LE(header.logLength, 68);
  buf.writeBigUInt64LE(BigInt(header.logOffset), 72);
  buf.writeUInt32LE(crc32cWithZeroedField(buf, CHECKSUM_OFFSET), CHECKSUM_OFFSET);
  return buf;
}

export interface CurrentHeader {
  readonly header: VhdxHeader;
  readonly slot: 0 | 1;
}

/**
 * Picks the current header from the two slots' bytes (2.2.2). Equal sequence numbers are only
 * accepted when both headers say the same thing.
 */
export function selectCurrentHeader(slot1: Buffer, slot2: Buffer): CurrentHeader {
  const parsed = [slot1, slot2].map((buf, i) => {
    try {
      return { header: parseHeader(buf, i as 0 | 1) };
    } catch (error) {
      return { error: error as Error };
    }
  });
  const [a, b] = parsed as [typeof parsed[0], typeof parsed[0]];
  if (!a?.header && !b?.header) {
    throw vhdxError(
      'vhdx-no-valid-header',
      `Neither header is valid. Header 1: ${a?.error?.message} Header 2: ${b?.error?.message}`,
      { structure: 'header' },
    );
  }
  if (a?.header && !b?.header) return { header: a.header, slot: 0 };
  if (!a?.header && b?.header) return { header: b.header, slot: 1 };
  const h1 = a!.header!;
  const h2 = b!.header!;
  if (h1.sequenceNumber > h2.sequenceNumber) return { header: h1, slot: 0 };
  if (h2.sequenceNumber > h1.sequenceNumber) return { header: h2, slot: 1 };
  if (slot1.subarray(0, HEADER_SIZE).equals(slot2.subarray(0, HEADER_SIZE))) return { header: h1, slot: 0 };
  throw vhdxError(
    'vhdx-ambiguous-header',
    `Both headers are valid with SequenceNumber ${h1.sequenceNumber} but differ, so neither is current.`,
    { structure: 'header', sequenceNumber: String(h1.sequenceNumber) },
  );
}

/** Checks the fields a valid header may still get wrong (2.2.2), against the file's size. */
export function validateHeader(header: VhdxHeader, fileSize: number): void {
  if (header.version !== HEADER_VERSION) {
    throw vhdxError(
      'vhdx-unsupported-version',
      `The header's Version is ${header.version}; only version ${HEADER_VERSION} is defined.`,
      { field: 'Version', found: header.version },
    );
  }
  if (header.logVersion !== LOG_VERSION && header.logGuid !== ZERO_GUID) {
    throw vhdxError(
      'vhdx-unsupported-version',
      `The header's LogVersion is ${header.logVersion} and the log is not empty; only log version ${LOG_VERSION} can be replayed.`,
      { field: 'LogVersion', found: header.logVersion },
    );
  }
  const { logOffset, logLength } = header;
  if (logOffset % ALIGNMENT !== 0 || logLength % ALIGNMENT !== 0 || logOffset < HEADER_SECTION_SIZE) {
    throw vhdxError(
      'vhdx-bad-log-location',
      `The log is at offset ${quote(logOffset)} with length ${quote(logLength)}; both must be multiples of 1 MiB, past the 1 MiB header section.`,
      { logOffset, logLength },
    );
  }
  if (logLength > 0 && logOffset + logLength > fileSize) {
    throw vhdxError(
      'vhdx-truncated',
      `The log ends at ${quote(logOffset + logLength)}, past the end of the file (${quote(fileSize)} bytes).`,
      { logOffset, logLength, fileSize },
    );
  }
}
