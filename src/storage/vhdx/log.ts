/**
 * The metadata log (MS-VHDX 2.3): a ring of 4 KiB sectors holding entries — a 64-byte header and
 * 32-byte descriptors in the descriptor sectors, then one data sector per data descriptor. This
 * file parses and validates entries, finds the active sequence exactly as 2.3.3 describes, turns
 * it into a list of writes, and encodes new entries. It does no I/O.
 */
import { crc32cWithZeroedField } from './crc32c.js';
import { vhdxError, quote } from './errors.js';
import { readGuid, writeGuid, type Guid } from './guid.js';
import { HEADER_SECTION_SIZE, LOG_SECTOR_SIZE, REGION_TABLE_1_OFFSET } from './layout.js';

/** "loge", "zero", "desc", "data" read as little-endian u32s. */
export const LOG_ENTRY_SIGNATURE = 0x65676f6c;
export const ZERO_DESCRIPTOR_SIGNATURE = 0x6f72657a;
export const DATA_DESCRIPTOR_SIGNATURE = 0x63736564;
export const DATA_SECTOR_SIGNATURE = 0x61746164;
export const ENTRY_HEADER_LENGTH = 64;
export const DESCRIPTOR_LENGTH = 32;
/** Bytes of a data sector's payload kept in the sector; the first 8 and last 4 live in the descriptor. */
const DATA_SECTOR_PAYLOAD = 4084;
const CHECKSUM_OFFSET = 4;
/**
 * Our bounds on what a log may ask for, beyond the spec: a zero descriptor covers at most
 * 1 GiB (real ones zero a block or a bitmap), and LastFileOffset may exceed the file by at most
 * 1 TiB. Anything larger is treated as damage rather than obeyed (it would take hours).
 */
export const MAX_ZERO_DESCRIPTOR_LENGTH = 1024 * 1024 * 1024;
export const MAX_FILE_GROWTH_BY_REPLAY = 1024 * 1024 * 1024 * 1024;

export interface LogEntryHeader {
  readonly entryLength: number;
  readonly tail: number;
  readonly sequenceNumber: bigint;
  readonly descriptorCount: number;
  readonly logGuid: Guid;
  readonly flushedFileOffset: number;
  readonly lastFileOffset: number;
}

/** One update an entry describes: a 4 KiB sector of data, or a 4 KiB-aligned run of zeros. */
export type LogWrite =
  | { readonly kind: 'data'; readonly fileOffset: number; readonly data: Buffer }
  | { readonly kind: 'zero'; readonly fileOffset: number; readonly length: number };

export interface LogEntry {
  /** Byte offset of the entry within the log. */
  readonly position: number;
  readonly header: LogEntryHeader;
  readonly writes: readonly LogWrite[];
}

export interface ActiveSequence {
  /** Tail entry first, head entry last. */
  readonly entries: readonly LogEntry[];
  readonly head: LogEntry;
}

export function descriptorSectors(descriptorCount: number): number {
  return Math.ceil((ENTRY_HEADER_LENGTH + descriptorCount * DESCRIPTOR_LENGTH) / LOG_SECTOR_SIZE);
}

/** Limits a replayed descriptor must respect beyond the spec's own field rules. */
export interface ReplayBounds {
  /** Writes must end at or before this offset (the larger of file size and LastFileOffset). */
  readonly maxFileOffset: number;
  /** The log itself, which an entry must not rewrite. */
  readonly logOffset: number;
  readonly logLength: number;
}

/** Copies `length` bytes starting at `position` of the ring, wrapping at its end. */
function ringSlice(log: Buffer, position: number, length: number): Buffer {
  if (position + length <= log.length) return log.subarray(position, position + length);
  const first = log.length - position;
  return Buffer.concat([log.subarray(position), log.subarray(0, length - first)]);
}

/**
 * Reads and fully validates the entry at `position` of the ring (2.3.1): signature, lengths,
 * sequence number, LogGuid, checksum, every descriptor and data sector. Returns undefined for
 * anything that is not a valid entry; the search treats that as "no entry here".
 */
export function readLogEntry(log: Buffer, position: number, logGuid: Guid, bounds: ReplayBounds): LogEntry | undefined {
  if (position % LOG_SECTOR_SIZE !== 0 || position >= log.length) return undefined;
  const first = log.subarray(position, position + LOG_SECTOR_SIZE);
  if (first.readUInt32LE(0) !== LOG_ENTRY_SIGNATURE) return undefined;
  const entryLength = first.readUInt32LE(8);
  const tail = first.readUInt32LE(12);
  const sequenceNumber = first.readBigUInt64LE(16);
  const descriptorCount = first.readUInt32LE(24);
  if (
    entryLength === 0 ||
    entryLength % LOG_SECTOR_SIZE !== 0 ||
    entryLength > log.length ||
    tail % LOG_SECTOR_SIZE !== 0 ||
    tail >= log.length ||
    sequenceNumber === 0n ||
    readGuid(first, 32) !== logGuid
  ) {
    return undefined;
  }
  const sectors = entryLength / LOG_SECTOR_SIZE;
  const descSectors = descriptorSectors(descriptorCount);
  if (descSectors > sectors) return undefined;
  const entry = ringSlice(log, position, entryLength);
  if (crc32cWithZeroedField(entry, CHECKSUM_OFFSET) !== entry.readUInt32LE(CHECKSUM_OFFSET)) return undefined;
  const header: LogEntryHeader = {
    entryLength,
    tail,
    sequenceNumber,
    descriptorCount,
    logGuid,
    flushedFileOffset: Number(first.readBigUInt64LE(48)),
    lastFileOffset: Number(first.readBigUInt64LE(56)),
  };
  const writes: LogWrite[] = [];
  let dataSector = descSectors;
  const inBounds = (offset: number, length: number): boolean =>
    offset >= REGION_TABLE_1_OFFSET &&
    offset + length <= bounds.maxFileOffset &&
    (offset + length <= bounds.logOffset || offset >= bounds.logOffset + bounds.logLength);
  for (let i = 0; i < descriptorCount; i++) {
    const at = ENTRY_HEADER_LENGTH + i * DESCRIPTOR_LENGTH;
    const signature = entry.readUInt32LE(at);
    const fileOffset = Number(entry.readBigUInt64LE(at + 16));
    if (entry.readBigUInt64LE(at + 24) !== sequenceNumber) return undefined;
    if (fileOffset % LOG_SECTOR_SIZE !== 0) return undefined;
    if (signature === ZERO_DESCRIPTOR_SIGNATURE) {
      const length = Number(entry.readBigUInt64LE(at + 8));
      if (length % LOG_SECTOR_SIZE !== 0 || length > MAX_ZERO_DESCRIPTOR_LENGTH || !inBounds(fileOffset, length)) return undefined;
      if (length > 0) writes.push({ kind: 'zero', fileOffset, length });
    } else if (signature === DATA_DESCRIPTOR_SIGNATURE) {
      if (dataSector >= sectors || !inBounds(fileOffset, LOG_SECTOR_SIZE)) return undefined;
      const sector = entry.subarray(dataSector * LOG_SECTOR_SIZE, (dataSector + 1) * LOG_SECTOR_SIZE);
      dataSector++;
      const high = BigInt(sector.readUInt32LE(4));
      const low = BigInt(sector.readUInt32LE(LOG_SECTOR_SIZE - 4));
      if (sector.readUInt32LE(0) !== DATA_SECTOR_SIGNATURE || ((high << 32n) | low) !== sequenceNumber) return undefined;
      const data = Buffer.alloc(LOG_SECTOR_SIZE);
      entry.copy(data, 0, at + 8, at + 16); //  LeadingBytes
      sector.copy(data, 8, 8, 8 + DATA_SECTOR_PAYLOAD);
      entry.copy(data, LOG_SECTOR_SIZE - 4, at + 4, at + 8); // TrailingBytes
      writes.push({ kind: 'data', fileOffset, data });
    } else {
      return undefined;
    }
  }
  return { position, header, writes };
}

/**
 * Finds the active sequence with the procedure of MS-VHDX 2.3.3: scan the ring from offset 0,
 * grow a sequence of consecutive valid entries with consecutive sequence numbers from each
 * candidate tail, keep it if its head's Tail points into it and its head is the newest seen,
 * then move past it (or 4 KiB on), until the scan wraps. Returns undefined if there is none.
 * Replay covers the entries from the head's Tail to the head.
 */
export function findActiveSequence(log: Buffer, logGuid: Guid, bounds: ReplayBounds): ActiveSequence | undefined {
  const cache = new Map<number, LogEntry | undefined>();
  const entryAt = (position: number): LogEntry | undefined => {
    if (!cache.has(position)) cache.set(position, readLogEntry(log, position, logGuid, bounds));
    return cache.get(position);
  };
  const maxSteps = log.length / LOG_SECTOR_SIZE + 1;
  let candidate: ActiveSequence | undefined;
  let currentTail = 0;
  let oldTail = 0;
  for (let step = 0; step < maxSteps; step++) {
    const sequence: LogEntry[] = [];
    let head = currentTail;
    for (;;) {
      const entry = entryAt(head);
      if (!entry) break;
      const last = sequence[sequence.length - 1];
      if (last && entry.header.sequenceNumber !== last.header.sequenceNumber + 1n) break;
      if (sequence.some((e) => e.position === entry.position)) break;
      sequence.push(entry);
      head = (head + entry.header.entryLength) % log.length;
      if (sequence.length > maxSteps) break;
    }
    const last = sequence[sequence.length - 1];
    const tailIndex = last ? sequence.findIndex((e) => e.position === last.header.tail) : -1;
    const valid = last !== undefined && tailIndex >= 0;
    if (valid && (!candidate || last.header.sequenceNumber > candidate.head.header.sequenceNumber)) {
      candidate = { entries: sequence.slice(tailIndex), head: last };
    }
    currentTail = valid ? head : (currentTail + LOG_SECTOR_SIZE) % log.length;
    if (currentTail <= oldTail) break;
    oldTail = currentTail;
  }
  return candidate;
}

export interface ReplayPlan {
  readonly sequence: ActiveSequence;
  /** Every write, in replay order. */
  readonly writes: readonly LogWrite[];
  /** The file must be at least this long after replay (the head's LastFileOffset). */
  readonly minimumFileSize: number;
}

/**
 * What replaying the log of a file of `fileSize` bytes means: the writes of the active sequence,
 * or an error when the log is corrupt (no active sequence) or the file was truncated.
 */
export function planReplay(log: Buffer, logGuid: Guid, fileSize: number, where: { logOffset: number }): ReplayPlan {
  const bounds: ReplayBounds = {
    maxFileOffset: Math.max(fileSize, HEADER_SECTION_SIZE),
    logOffset: where.logOffset,
    logLength: log.length,
  };
  // Descriptors may extend the file up to the head's LastFileOffset; a first pass learns it.
  const probe = findActiveSequence(log, logGuid, { ...bounds, maxFileOffset: Number.MAX_SAFE_INTEGER });
  if (!probe) {
    throw vhdxError(
      'vhdx-log-corrupt',
      `The header's LogGuid is ${logGuid} but the ${quote(log.length)}-byte log holds no valid, complete sequence of entries with that GUID.`,
      { logGuid },
      'MS-VHDX 2.3.3 requires refusing such a file. If it was being written when a host crashed, a copy opened with { tolerateEmptyLog: true } shows the data as last flushed.',
    );
  }
  if (probe.head.header.lastFileOffset > fileSize + MAX_FILE_GROWTH_BY_REPLAY) {
    throw vhdxError(
      'vhdx-log-corrupt',
      `The log's newest entry says the file should be ${quote(probe.head.header.lastFileOffset)} bytes long, more than 1 TiB past its ${quote(fileSize)} bytes.`,
      { lastFileOffset: probe.head.header.lastFileOffset, fileSize },
    );
  }
  const last = Math.max(fileSize, probe.head.header.lastFileOffset);
  const sequence = findActiveSequence(log, logGuid, { ...bounds, maxFileOffset: last });
  if (!sequence || sequence.head.header.sequenceNumber !== probe.head.header.sequenceNumber) {
    throw vhdxError(
      'vhdx-log-corrupt',
      `The log's newest sequence (head sequence number ${probe.head.header.sequenceNumber}) writes past its own LastFileOffset ${quote(probe.head.header.lastFileOffset)}.`,
      { logGuid },
    );
  }
  if (fileSize < sequence.head.header.flushedFileOffset) {
    throw vhdxError(
      'vhdx-log-truncated',
      `The file is ${quote(fileSize)} bytes, shorter than the ${quote(sequence.head.header.flushedFileOffset)} bytes its log says were flushed: it has been truncated.`,
      { fileSize, flushedFileOffset: sequence.head.header.flushedFileOffset },
    );
  }
  return {
    sequence,
    writes: sequence.entries.flatMap((e) => e.writes),
    minimumFileSize: sequence.head.header.lastFileOffset,
  };
}

export interface NewLogEntry {
  readonly sequenceNumber: bigint;
  readonly tail: number;
  readonly logGuid: Guid;
  readonly flushedFileOffset: number;
  readonly lastFileOffset: number;
  /** 4 KiB-aligned sectors to write; `data` is exactly 4 KiB. */
  readonly sectors: readonly { fileOffset: number; data: Buffer }[];
  readonly zeros?: readonly { fileOffset: number; length: number }[];
}

export function entryLengthFor(dataSectors: number, zeroDescriptors = 0): number {
  return (descriptorSectors(dataSectors + zeroDescriptors) + dataSectors) * LOG_SECTOR_SIZE;
}

/** Encodes one log entry (2.3.1): header, descriptors, data sectors, CRC-32C over all of it. */
export function encodeLogEntry(e: NewLogEntry): Buffer {
  const zeros = e.zeros ?? [];
  const count = e.sectors.length + zeros.length;
  const descSectors = descriptorSectors(count);
  const buf = Buffer.alloc((descSectors + e.sectors.length) * LOG_SECTOR_SIZE);
  buf.writeUInt32LE(LOG_ENTRY_SIGNATURE, 0);
  buf.writeUInt32LE(buf.length, 8);
  buf.writeUInt32LE(e.tail, 12);
  buf.writeBigUInt64LE(e.sequenceNumber, 16);
  buf.writeUInt32LE(count, 24);
  writeGuid(buf, 32, e.logGuid);
  buf.writeBigUInt64LE(BigInt(e.flushedFileOffset), 48);
  buf.writeBigUInt64LE(BigInt(e.lastFileOffset), 56);
  let d = 0;
  for (const z of zeros) {
    const at = ENTRY_HEADER_LENGTH + d++ * DESCRIPTOR_LENGTH;
    buf.writeUInt32LE(ZERO_DESCRIPTOR_SIGNATURE, at);
    buf.writeBigUInt64LE(BigInt(z.length), at + 8);
    buf.writeBigUInt64LE(BigInt(z.fileOffset), at + 16);
    buf.writeBigUInt64LE(e.sequenceNumber, at + 24);
  }
  e.sectors.forEach((s, i) => {
    const at = ENTRY_HEADER_LENGTH + d++ * DESCRIPTOR_LENGTH;
    buf.writeUInt32LE(DATA_DESCRIPTOR_SIGNATURE, at);
    s.data.copy(buf, at + 4, LOG_SECTOR_SIZE - 4, LOG_SECTOR_SIZE); // TrailingBytes
    s.data.copy(buf, at + 8, 0, 8); // LeadingBytes
    buf.writeBigUInt64LE(BigInt(s.fileOffset), at + 16);
    buf.writeBigUInt64LE(e.sequenceNumber, at + 24);
    const sector = (descSectors + i) * LOG_SECTOR_SIZE;
    buf.writeUInt32LE(DATA_SECTOR_SIGNATURE, sector);
    buf.writeUInt32LE(Number(e.sequenceNumber >> 32n), sector + 4);
    s.data.copy(buf, sector + 8, 8, 8 + DATA_SECTOR_PAYLOAD);
    buf.writeUInt32LE(Number(e.sequenceNumber & 0xffffffffn), sector + LOG_SECTOR_SIZE - 4);
  });
  buf.writeUInt32LE(crc32cWithZeroedField(buf, CHECKSUM_OFFSET), CHECKSUM_OFFSET);
  return buf;
}

/** Overlays a list of replayed writes on reads, for read-only opens that replay in memory. */
export class LogOverlay {
  private readonly start: number;
  private readonly end: number;

  constructor(readonly writes: readonly LogWrite[]) {
    this.start = Math.min(...writes.map((w) => w.fileOffset), Number.MAX_SAFE_INTEGER);
    this.end = Math.max(...writes.map((w) => w.fileOffset + (w.kind === 'data' ? LOG_SECTOR_SIZE : w.length)), 0);
  }

  /** Patches `buf`, which holds the file's bytes from `position`, with the logged writes. */
  apply(buf: Buffer, position: number): void {
    const bufEnd = position + buf.length;
    if (bufEnd <= this.start || position >= this.end) return;
    for (const w of this.writes) {
      const wEnd = w.fileOffset + (w.kind === 'data' ? LOG_SECTOR_SIZE : w.length);
      const from = Math.max(w.fileOffset, position);
      const to = Math.min(wEnd, bufEnd);
      if (from >= to) continue;
      if (w.kind === 'data') w.data.copy(buf, from - position, from - w.fileOffset, to - w.fileOffset);
      else buf.fill(0, from - position, to - position);
    }
  }
}

