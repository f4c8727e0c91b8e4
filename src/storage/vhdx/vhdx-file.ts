/**
 * A VHDX file opened for I/O: validation on open (2.2-2.6), log replay (2.3.3) — on disk for a
 * writable open, in memory for a read-only one, which never writes — reads at any offset across
 * block states and a differencing chain, and writes that allocate blocks, keep the sector bitmap
 * and commit BAT and bitmap changes through the log.
 */
import { open as openFile, realpath, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { VisorError } from '../../core/errors.js';
import {
  BAT_ENTRY_SIZE,
  batGeometry,
  bitmapEntryIndex,
  payloadEntryIndex,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  readBatEntry,
  SB_BLOCK_PRESENT,
  validateBat,
  writeBatEntry,
  type BatEntry,
  type BatGeometry,
  type OccupiedRange,
} from './bat.js';
import { inFile, quote, vhdxError } from './errors.js';
import { parseFileIdentifier } from './file-identifier.js';
import { newGuid, ZERO_GUID, type Guid } from './guid.js';
import { encodeHeader, HEADER_OFFSETS, HEADER_SIZE, selectCurrentHeader, validateHeader, type VhdxHeader } from './header.js';
import {
  alignUp,
  ALIGNMENT,
  HEADER_SECTION_SIZE,
  LOG_SECTOR_SIZE,
  MiB,
  REGION_TABLE_1_OFFSET,
  SECTOR_BITMAP_BLOCK_SIZE,
} from './layout.js';
import { encodeLogEntry, entryLengthFor, LogOverlay, planReplay, type LogWrite } from './log.js';
import { parseMetadataRegion, type VhdxMetadata } from './metadata.js';
import { parentCandidates, type ParentLocator } from './parent-locator.js';
import {
  BAT_REGION_GUID,
  encodeRegionTable,
  parseRegionTable,
  REGION_TABLE_OFFSETS,
  REGION_TABLE_SIZE,
  type RegionTable,
} from './region-table.js';
import { bitmapBitIndex, runLength, setBits, testBit } from './sector-bitmap.js';
import { readFromParent, readInto, readExactly, writeAll } from '../file-io.js';

/** Deeper chains than this are refused: Hyper-V checkpoint trees stay far below it. */
export const MAX_CHAIN_DEPTH = 64;
/** Larger logs or metadata regions than this are refused rather than read into memory. */
const MAX_LOG_LENGTH = 1024 * MiB;
const MAX_METADATA_REGION_LENGTH = 64 * MiB;
const ZERO_CHUNK = Buffer.alloc(1 * MiB);

export type VhdxDiskType = 'fixed' | 'dynamic' | 'differencing';

/** Hooks for tests that simulate a crash at a chosen point of the write path. */
export interface VhdxTestHooks {
  /** Called after a log entry is stable and before it is applied; throwing "crashes" there. */
  afterLogFlush?: () => void;
}

export interface VhdxOpenOptions {
  /** Default true. A read-only open never writes to the file. */
  readOnly?: boolean;
  /**
   * A read-only open of a file whose log must be replayed: 'in-memory' (default) replays into an
   * overlay every read goes through; 'refuse' throws `vhdx-log-replay-required`.
   */
  readOnlyReplay?: 'in-memory' | 'refuse';
  /**
   * MS-VHDX 2.3.3 says a file whose header names a log but whose log holds no valid sequence is
   * corrupt. QEMU treats it as empty (it can leave files so after a crash). Default false.
   */
  tolerateEmptyLog?: boolean;
  /** Open the parent chain of a differencing disk (default true). Without it reads refuse. */
  openParent?: boolean;
  hooks?: VhdxTestHooks;
}

export interface VhdxInfo {
  readonly path: string;
  readonly creator: string;
  readonly diskType: VhdxDiskType;
  readonly virtualSize: number;
  readonly blockSize: number;
  readonly logicalSectorSize: 512 | 4096;
  readonly physicalSectorSize: 512 | 4096;
  readonly virtualDiskId: Guid;
  readonly dataWriteGuid: Guid;
  readonly leaveBlocksAllocated: boolean;
  readonly parentLocator: ParentLocator | undefined;
  /** What happened to the log on open. */
  readonly logReplay: 'none' | 'replayed' | 'in-memory' | 'ignored-empty';
}

/** How one payload block is stored in this file (not its parents). */
export interface BlockMapping {
  readonly state: number;
  readonly fileOffset: number;
}

interface ChainContext {
  readonly seen: Set<string>;
  readonly depth: number;
}

export class VhdxFile {
  private closed = false;
  private poisoned = false;
  private fileGuidChanged = false;
  private dataGuidChanged = false;
  private sessionLogGuid: Guid | undefined;
  private logHead = 0;
  private logSequence = 1n;
  private readonly bitmaps = new Map<number, Buffer>();
  private readonly dirtyBatSectors = new Set<number>();
  private readonly dirtyBitmapSectors = new Map<number, Set<number>>();
  private lock: Promise<unknown> = Promise.resolve();
  private logReplay: VhdxInfo['logReplay'] = 'none';
  /** The file's size on disk as last made stable (fileEnd is that, rounded up to 1 MiB). */
  private stableSize = 0;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly readOnly: boolean,
    private header: VhdxHeader,
    private headerSlot: 0 | 1,
    private readonly creator: string,
    private regions: RegionTable,
    private meta: VhdxMetadata,
    private g: BatGeometry,
    private bat: Buffer,
    private fileEnd: number,
    private readonly overlay: LogOverlay | undefined,
    private readonly hooks: VhdxTestHooks,
    /** The open parent of a differencing disk, if it was opened. */
    readonly parent: VhdxFile | undefined,
  ) {}

  /** Opens and validates `path`; every failure is a VisorError naming the file. */
  static async open(path: string, options: VhdxOpenOptions = {}): Promise<VhdxFile> {
    return VhdxFile.openInChain(path, options, { seen: new Set(), depth: 0 });
  }

  private static async openInChain(path: string, options: VhdxOpenOptions, chain: ChainContext): Promise<VhdxFile> {
    const readOnly = options.readOnly ?? true;
    let fh: FileHandle;
    try {
      fh = await openFile(path, readOnly ? 'r' : 'r+');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new VisorError('not-found', 'vhdx-not-found', `No file exists at "${path}".`, { field: 'path', details: { path } });
      }
      throw inFile(path, error);
    }
    try {
      return await VhdxFile.parse(path, fh, readOnly, options, chain);
    } catch (error) {
      await fh.close().catch(() => undefined);
      throw inFile(path, error);
    }
  }

  private static async parse(
    path: string,
    fh: FileHandle,
    readOnly: boolean,
    options: VhdxOpenOptions,
    chain: ChainContext,
  ): Promise<VhdxFile> {
    const fileSize = (await fh.stat()).size;
    const front = await readExactly(fh, 0, Math.min(fileSize, REGION_TABLE_1_OFFSET + 2 * REGION_TABLE_SIZE));
    const identifier = parseFileIdentifier(front);
    if (fileSize < HEADER_SECTION_SIZE) {
      throw vhdxError('vhdx-truncated', `The file is ${quote(fileSize)} bytes, shorter than the 1 MiB header section.`, {
        fileSize,
      });
    }
    const current = selectCurrentHeader(
      front.subarray(HEADER_OFFSETS[0], HEADER_OFFSETS[0] + HEADER_SIZE),
      front.subarray(HEADER_OFFSETS[1], HEADER_OFFSETS[1] + HEADER_SIZE),
    );
    let header = current.header;
    let headerSlot = current.slot;
    validateHeader(header, fileSize);

    // The log (2.3.3): replayed before anything but the headers and the log is read.
    let writes: readonly LogWrite[] = [];
    let minimumFileSize = 0;
    let logReplay: VhdxInfo['logReplay'] = 'none';
    if (header.logGuid !== ZERO_GUID && header.logLength > 0) {
      if (header.logLength > MAX_LOG_LENGTH) {
        throw vhdxError('vhdx-bad-log-location', `The log is ${quote(header.logLength)} bytes long; more than 1 GiB is refused.`, {
          logLength: header.logLength,
        });
      }
      const log = await readExactly(fh, header.logOffset, header.logLength);
      try {
        const plan = planReplay(log, header.logGuid, fileSize, { logOffset: header.logOffset });
        writes = plan.writes;
        minimumFileSize = plan.minimumFileSize;
        logReplay = readOnly ? 'in-memory' : 'replayed';
      } catch (error) {
        if (!(options.tolerateEmptyLog && error instanceof VisorError && error.code === 'vhdx-log-corrupt')) throw error;
        logReplay = 'ignored-empty';
      }
      if (logReplay === 'in-memory' && options.readOnlyReplay === 'refuse') {
        throw vhdxError(
          'vhdx-log-replay-required',
          `The file's log holds ${writes.length} unapplied update(s), and it was opened read-only with replay refused.`,
          { updates: writes.length },
          'Open it writable once to replay the log, or open it read-only with in-memory replay.',
        );
      }
    }
    const overlay = logReplay === 'in-memory' && writes.length > 0 ? new LogOverlay(writes) : undefined;
    let effectiveSize = fileSize;
    if (logReplay === 'replayed') {
      ({ header, slot: headerSlot } = await replayOnDisk(fh, header, headerSlot, writes, minimumFileSize, fileSize));
      effectiveSize = Math.max(fileSize, alignUp(minimumFileSize, ALIGNMENT));
    } else if (overlay) {
      effectiveSize = Math.max(fileSize, minimumFileSize);
    }
    const readPatched = async (position: number, length: number): Promise<Buffer> => {
      const buf = await readExactly(fh, position, Math.max(0, Math.min(length, fileSize - position)), length);
      overlay?.apply(buf, position);
      return buf;
    };

    // Region table: the first copy, or the second when the first is damaged.
    let regions: RegionTable;
    const tables = await readPatched(REGION_TABLE_OFFSETS[0], 2 * REGION_TABLE_SIZE);
    try {
      regions = parseRegionTable(tables.subarray(0, REGION_TABLE_SIZE), 0);
    } catch (first) {
      try {
        regions = parseRegionTable(tables.subarray(REGION_TABLE_SIZE), 1);
      } catch {
        throw first;
      }
    }
    const occupied: OccupiedRange[] = [];
    if (header.logLength > 0) occupied.push({ name: 'log', offset: header.logOffset, length: header.logLength });
    for (const r of regions.entries) {
      if (r.length === 0) continue;
      const name = r === regions.bat ? 'BAT region' : r === regions.metadata ? 'metadata region' : `region ${r.guid}`;
      if (r.fileOffset + r.length > effectiveSize) {
        throw vhdxError('vhdx-truncated', `The ${name} ends at ${quote(r.fileOffset + r.length)}, past the end of the file (${quote(effectiveSize)}).`, {
          region: r.guid,
        });
      }
      if (header.logLength > 0 && r.fileOffset < header.logOffset + header.logLength && header.logOffset < r.fileOffset + r.length) {
        throw vhdxError('vhdx-region-overlap', `The ${name} overlaps the log at ${quote(header.logOffset)}.`, { region: r.guid });
      }
      occupied.push({ name, offset: r.fileOffset, length: r.length });
    }
    if (regions.metadata.length > MAX_METADATA_REGION_LENGTH) {
      throw vhdxError('vhdx-bad-region-table', `The metadata region is ${quote(regions.metadata.length)} bytes; more than 64 MiB is refused.`);
    }
    const meta = parseMetadataRegion(await readPatched(regions.metadata.fileOffset, regions.metadata.length));
    const g = batGeometry(meta);
    const batBytes = Math.min(regions.bat.length, alignUp(g.entryCount * BAT_ENTRY_SIZE, LOG_SECTOR_SIZE));
    if (g.entryCount * BAT_ENTRY_SIZE > regions.bat.length) {
      throw vhdxError(
        'vhdx-bat-too-small',
        `The BAT region is ${quote(regions.bat.length)} bytes; a ${quote(meta.virtualDiskSize)}-byte disk with ${quote(meta.blockSize)}-byte blocks needs ${g.entryCount} entries.`,
        { batLength: regions.bat.length, needed: g.entryCount },
      );
    }
    const bat = await readPatched(regions.bat.fileOffset, batBytes);
    validateBat(bat, g, effectiveSize, occupied);

    let parent: VhdxFile | undefined;
    const real = await realpath(path);
    if (chain.seen.has(real)) {
      throw vhdxError('vhdx-parent-loop', `The differencing chain comes back to "${real}", which is already in it.`, {
        chain: [...chain.seen],
      });
    }
    if (meta.hasParent && options.openParent !== false) {
      if (chain.depth + 1 > MAX_CHAIN_DEPTH) {
        throw vhdxError('vhdx-chain-too-deep', `The differencing chain is deeper than ${MAX_CHAIN_DEPTH} files.`, {
          depth: chain.depth,
        });
      }
      parent = await openParent(real, meta, { seen: new Set([...chain.seen, real]), depth: chain.depth + 1 }, options);
    }
    const file = new VhdxFile(
      path,
      fh,
      readOnly,
      header,
      headerSlot,
      identifier.creator,
      regions,
      meta,
      g,
      bat,
      alignUp(effectiveSize, ALIGNMENT),
      overlay,
      options.hooks ?? {},
      parent,
    );
    file.logReplay = logReplay;
    file.stableSize = effectiveSize;
    if (logReplay === 'replayed') file.fileGuidChanged = true;
    return file;
  }

  get info(): VhdxInfo {
    return {
      path: this.path,
      creator: this.creator,
      diskType: this.meta.hasParent ? 'differencing' : this.meta.leaveBlocksAllocated ? 'fixed' : 'dynamic',
      virtualSize: this.meta.virtualDiskSize,
      blockSize: this.meta.blockSize,
      logicalSectorSize: this.meta.logicalSectorSize,
      physicalSectorSize: this.meta.physicalSectorSize,
      virtualDiskId: this.meta.virtualDiskId,
      dataWriteGuid: this.header.dataWriteGuid,
      leaveBlocksAllocated: this.meta.leaveBlocksAllocated,
      parentLocator: this.meta.parentLocator,
      logReplay: this.logReplay,
    };
  }

  get virtualSize(): number {
    return this.meta.virtualDiskSize;
  }

  get geometry(): BatGeometry {
    return this.g;
  }

  /** The on-disk layout facts a maintenance operation needs. */
  get layout(): { header: VhdxHeader; regions: RegionTable; fileEnd: number } {
    return { header: this.header, regions: this.regions, fileEnd: this.fileEnd };
  }

  blockMapping(block: number): BlockMapping {
    return readBatEntry(this.bat, payloadEntryIndex(this.g, block));
  }

  /**
   * Whether block `block` can hold data anywhere in the chain (false means it reads as zeros
   * without looking at the file).
   */
  blockMayHoldData(block: number): boolean {
    const { state } = this.blockMapping(block);
    if (state === PAYLOAD_BLOCK_FULLY_PRESENT || state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) return true;
    if (state !== PAYLOAD_BLOCK_NOT_PRESENT || !this.meta.hasParent) return false;
    if (!this.parent) return true; // unknown without the parent: reading it will say so
    const pos = block * this.g.blockSize;
    if (pos >= this.parent.virtualSize) return false;
    return this.parent.blockMayHoldDataAt(pos, Math.min(this.g.blockSize, this.parent.virtualSize - pos));
  }

  /**
   * What this file itself (not its parents) says about block `block`, as byte ranges within the
   * block: 'data' ranges it holds, 'zero' ranges it defines as zeros. Ranges it leaves to the
   * parent are absent.
   */
  async ownedRanges(block: number): Promise<{ kind: 'data' | 'zero'; start: number; end: number; fileOffset: number }[]> {
    const m = this.blockMapping(block);
    const bs = Math.min(this.g.blockSize, this.meta.virtualDiskSize - block * this.g.blockSize);
    if (m.state === PAYLOAD_BLOCK_FULLY_PRESENT) return [{ kind: 'data', start: 0, end: bs, fileOffset: m.fileOffset }];
    if (m.state === PAYLOAD_BLOCK_NOT_PRESENT) return this.meta.hasParent ? [] : [{ kind: 'zero', start: 0, end: bs, fileOffset: 0 }];
    if (m.state !== PAYLOAD_BLOCK_PARTIALLY_PRESENT) return [{ kind: 'zero', start: 0, end: bs, fileOffset: 0 }];
    const lss = this.g.logicalSectorSize;
    const bitmap = await this.loadBitmap(Math.floor(block / this.g.chunkRatio));
    const endBit = bitmapBitIndex(this.g, block, bs / lss);
    const out: { kind: 'data' | 'zero'; start: number; end: number; fileOffset: number }[] = [];
    for (let sector = 0; sector < bs / lss; ) {
      const bit = bitmapBitIndex(this.g, block, sector);
      const run = runLength(bitmap, bit, endBit);
      if (testBit(bitmap, bit)) out.push({ kind: 'data', start: sector * lss, end: (sector + run) * lss, fileOffset: m.fileOffset + sector * lss });
      sector += run;
    }
    return out;
  }

  /** Whether any block overlapping [position, position + length) may hold data (see blockMayHoldData). */
  blockMayHoldDataAt(position: number, length: number): boolean {
    const bs = this.g.blockSize;
    for (let b = Math.floor(position / bs); b * bs < position + length; b++) if (this.blockMayHoldData(b)) return true;
    return false;
  }

  /** How the sector bitmap block of chunk `chunk` is stored. */
  bitmapMapping(chunk: number): BlockMapping {
    return readBatEntry(this.bat, bitmapEntryIndex(this.g, chunk));
  }

  /** Reads file bytes (not virtual-disk bytes) at `position`, through the log overlay. */
  async readFileBytes(buf: Buffer, position: number): Promise<void> {
    this.assertOpen();
    await readInto(this.fh, buf, position);
    this.overlay?.apply(buf, position);
  }

  /** Reads `length` bytes of the virtual disk at `position`. */
  async read(position: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(buf, position);
    return buf;
  }

  /** Fills `buf` with the virtual disk's bytes from `position`. */
  async readInto(buf: Buffer, position: number): Promise<void> {
    this.assertOpen();
    this.assertRange(position, buf.length);
    const bs = this.g.blockSize;
    let done = 0;
    while (done < buf.length) {
      const pos = position + done;
      const block = Math.floor(pos / bs);
      const inBlock = pos - block * bs;
      const n = Math.min(bs - inBlock, buf.length - done);
      // Coalesce runs of fully present blocks that sit back to back in the file.
      const first = this.blockMapping(block);
      if (first.state === PAYLOAD_BLOCK_FULLY_PRESENT) {
        let len = n;
        let next = block + 1;
        while (done + len < buf.length) {
          const m = this.blockMapping(next);
          if (m.state !== PAYLOAD_BLOCK_FULLY_PRESENT || m.fileOffset !== first.fileOffset + (next - block) * bs) break;
          len += Math.min(bs, buf.length - done - len);
          next++;
        }
        await this.readFileBytes(buf.subarray(done, done + len), first.fileOffset + inBlock);
        done += len;
        continue;
      }
      await this.readBlockRange(block, inBlock, buf.subarray(done, done + n));
      done += n;
    }
  }

  private async readBlockRange(block: number, inBlock: number, out: Buffer): Promise<void> {
    const entry = this.blockMapping(block);
    const virtual = block * this.g.blockSize + inBlock;
    switch (entry.state) {
      case PAYLOAD_BLOCK_FULLY_PRESENT:
        return this.readFileBytes(out, entry.fileOffset + inBlock);
      case PAYLOAD_BLOCK_PARTIALLY_PRESENT: {
        const lss = this.g.logicalSectorSize;
        const bitmap = await this.loadBitmap(Math.floor(block / this.g.chunkRatio));
        const blockEndBit = bitmapBitIndex(this.g, block, this.g.sectorsPerBlock);
        let off = inBlock;
        const end = inBlock + out.length;
        while (off < end) {
          const sector = Math.floor(off / lss);
          const bit = bitmapBitIndex(this.g, block, sector);
          const run = runLength(bitmap, bit, blockEndBit);
          const runEnd = Math.min(end, (sector + run) * lss);
          const part = out.subarray(off - inBlock, runEnd - inBlock);
          if (testBit(bitmap, bit)) await this.readFileBytes(part, entry.fileOffset + off);
          else await this.readParent(part, block * this.g.blockSize + off);
          off = runEnd;
        }
        return;
      }
      case PAYLOAD_BLOCK_NOT_PRESENT:
        if (this.meta.hasParent) return this.readParent(out, virtual);
        out.fill(0);
        return;
      default:
        out.fill(0); // UNDEFINED, ZERO, UNMAPPED: zeros (2.5.1.1 allows it for all three)
    }
  }

  private async readParent(out: Buffer, position: number): Promise<void> {
    if (!this.parent) {
      throw vhdxError(
        'vhdx-parent-not-found',
        `"${this.path}" is a differencing disk opened without its parent, so its unchanged sectors cannot be read.`,
      );
    }
    return readFromParent(this.parent, out, position);
  }

  private async loadBitmap(chunk: number): Promise<Buffer> {
    const cached = this.bitmaps.get(chunk);
    if (cached) return cached;
    const sb = readBatEntry(this.bat, bitmapEntryIndex(this.g, chunk));
    const buf = Buffer.alloc(SECTOR_BITMAP_BLOCK_SIZE);
    if (sb.state === SB_BLOCK_PRESENT) await this.readFileBytes(buf, sb.fileOffset);
    this.bitmaps.set(chunk, buf);
    return buf;
  }

  // ---- writing -------------------------------------------------------------------------------

  /** Writes `data` at virtual offset `position`. Durable after `flush()`. */
  async write(data: Buffer, position: number): Promise<void> {
    return this.exclusive(async () => {
      this.assertWritable();
      this.assertRange(position, data.length);
      if (data.length === 0) return;
      await this.beginModification(true);
      const bs = this.g.blockSize;
      let done = 0;
      while (done < data.length) {
        const pos = position + done;
        const block = Math.floor(pos / bs);
        const inBlock = pos - block * bs;
        const n = Math.min(bs - inBlock, data.length - done);
        await this.writeBlockRange(block, inBlock, data.subarray(done, done + n));
        done += n;
      }
    });
  }

  private async writeBlockRange(block: number, inBlock: number, data: Buffer): Promise<void> {
    const entry = this.blockMapping(block);
    if (entry.state === PAYLOAD_BLOCK_FULLY_PRESENT) {
      await writeAll(this.fh, data, entry.fileOffset + inBlock);
      return;
    }
    if (entry.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      await this.writeSectors(block, entry.fileOffset, inBlock, data);
      return;
    }
    const fromParent = this.meta.hasParent && entry.state === PAYLOAD_BLOCK_NOT_PRESENT;
    if (!fromParent || (inBlock === 0 && data.length === this.g.blockSize)) {
      const offset = await this.allocate(this.g.blockSize);
      await writeAll(this.fh, data, offset + inBlock);
      this.setPayload(block, { state: PAYLOAD_BLOCK_FULLY_PRESENT, fileOffset: offset });
      return;
    }
    await this.ensureBitmapBlock(Math.floor(block / this.g.chunkRatio));
    const offset = await this.allocate(this.g.blockSize);
    this.setPayload(block, { state: PAYLOAD_BLOCK_PARTIALLY_PRESENT, fileOffset: offset });
    await this.writeSectors(block, offset, inBlock, data);
  }

  /** Writes into a partially present block: whole sectors, copying partial ones from below first. */
  private async writeSectors(block: number, blockOffset: number, inBlock: number, data: Buffer): Promise<void> {
    const lss = this.g.logicalSectorSize;
    const startSector = Math.floor(inBlock / lss);
    const endSector = Math.ceil((inBlock + data.length) / lss);
    const alignedStart = startSector * lss;
    const aligned = Buffer.alloc((endSector - startSector) * lss);
    if (inBlock % lss !== 0) await this.readBlockRange(block, alignedStart, aligned.subarray(0, lss));
    if ((inBlock + data.length) % lss !== 0) {
      await this.readBlockRange(block, (endSector - 1) * lss, aligned.subarray(aligned.length - lss));
    }
    data.copy(aligned, inBlock - alignedStart);
    await writeAll(this.fh, aligned, blockOffset + alignedStart);
    const chunk = Math.floor(block / this.g.chunkRatio);
    const bitmap = await this.loadBitmap(chunk);
    const [fromByte, toByte] = setBits(
      bitmap,
      bitmapBitIndex(this.g, block, startSector),
      bitmapBitIndex(this.g, block, endSector),
    );
    let dirty = this.dirtyBitmapSectors.get(chunk);
    if (!dirty) this.dirtyBitmapSectors.set(chunk, (dirty = new Set()));
    for (let s = Math.floor(fromByte / LOG_SECTOR_SIZE); s * LOG_SECTOR_SIZE < toByte; s++) dirty.add(s);
  }

  private async ensureBitmapBlock(chunk: number): Promise<void> {
    const index = bitmapEntryIndex(this.g, chunk);
    if (readBatEntry(this.bat, index).state === SB_BLOCK_PRESENT) return;
    const offset = await this.allocate(SECTOR_BITMAP_BLOCK_SIZE);
    this.setBatEntry(index, { state: SB_BLOCK_PRESENT, fileOffset: offset });
    this.bitmaps.set(chunk, Buffer.alloc(SECTOR_BITMAP_BLOCK_SIZE));
  }

  private setPayload(block: number, entry: BatEntry): void {
    this.setBatEntry(payloadEntryIndex(this.g, block), entry);
  }

  private setBatEntry(index: number, entry: BatEntry): void {
    writeBatEntry(this.bat, index, entry);
    this.dirtyBatSectors.add(Math.floor((index * BAT_ENTRY_SIZE) / LOG_SECTOR_SIZE));
  }

  /** Claims `length` bytes at the end of the file; the file grows with zeros. */
  private async allocate(length: number): Promise<number> {
    const offset = this.fileEnd;
    this.fileEnd += length;
    await this.fh.truncate(this.fileEnd);
    this.stableSize = this.fileEnd; // made stable by the sync that precedes every log write
    return offset;
  }

  /**
   * Makes the written data and the BAT/bitmap changes durable: data first, then each batch of
   * metadata sectors through the log (write entry, flush, apply, flush — 2.3).
   */
  async flush(): Promise<void> {
    return this.exclusive(() => this.flushLocked());
  }

  private async flushLocked(): Promise<void> {
    this.assertOpen();
    if (this.readOnly || this.poisoned) return;
    await this.fh.sync();
    const sectors: { fileOffset: number; data: Buffer }[] = [];
    for (const [chunk, set] of this.dirtyBitmapSectors) {
      const sb = readBatEntry(this.bat, bitmapEntryIndex(this.g, chunk));
      const bitmap = this.bitmaps.get(chunk)!;
      for (const s of [...set].sort((a, b) => a - b)) {
        sectors.push({ fileOffset: sb.fileOffset + s * LOG_SECTOR_SIZE, data: Buffer.from(bitmap.subarray(s * LOG_SECTOR_SIZE, (s + 1) * LOG_SECTOR_SIZE)) });
      }
    }
    for (const s of [...this.dirtyBatSectors].sort((a, b) => a - b)) {
      sectors.push({
        fileOffset: this.regions.bat.fileOffset + s * LOG_SECTOR_SIZE,
        data: Buffer.from(this.bat.subarray(s * LOG_SECTOR_SIZE, (s + 1) * LOG_SECTOR_SIZE)),
      });
    }
    this.dirtyBitmapSectors.clear();
    this.dirtyBatSectors.clear();
    if (sectors.length > 0) await this.commitMetadata(sectors);
  }

  /**
   * Applies 4 KiB metadata sector updates through the log, in order.
   * @internal — for maintenance.ts, not part of the library surface.
   */
  async commitMetadata(sectors: readonly { fileOffset: number; data: Buffer }[]): Promise<void> {
    const logLength = this.header.logLength;
    if (logLength < 2 * entryLengthFor(1)) {
      // No usable log: write in place, in order, flushed (still crash-ordered: data came first).
      for (const s of sectors) await writeAll(this.fh, s.data, s.fileOffset);
      await this.fh.sync();
      return;
    }
    let perEntry = 1;
    while (entryLengthFor(perEntry + 1) <= logLength / 2) perEntry++;
    for (let i = 0; i < sectors.length; i += perEntry) {
      const batch = sectors.slice(i, i + perEntry);
      const logGuid = this.sessionLogGuid ?? newGuid();
      const entry = encodeLogEntry({
        sequenceNumber: this.logSequence,
        tail: this.logHead,
        logGuid,
        // FlushedFileOffset: a 1 MiB multiple the file is known to reach; LastFileOffset: one
        // every structure fits in (2.3.1.1).
        flushedFileOffset: Math.floor(this.stableSize / ALIGNMENT) * ALIGNMENT,
        lastFileOffset: this.fileEnd,
        sectors: batch,
      });
      await this.writeLogRing(entry, this.logHead);
      await this.fh.sync();
      if (this.header.logGuid !== logGuid) {
        // The entry is stable before the header names its GUID: a crash in between leaves a
        // clean file (LogGuid zero), never a LogGuid without a valid sequence.
        this.sessionLogGuid = logGuid;
        await this.updateHeader({ logGuid });
      }
      try {
        this.hooks.afterLogFlush?.();
      } catch (error) {
        this.poisoned = true;
        throw error;
      }
      for (const s of batch) await writeAll(this.fh, s.data, s.fileOffset);
      await this.fh.sync();
      this.logHead = (this.logHead + entry.length) % logLength;
      this.logSequence++;
    }
  }

  private async writeLogRing(entry: Buffer, position: number): Promise<void> {
    const { logOffset, logLength } = this.header;
    const first = Math.min(entry.length, logLength - position);
    await writeAll(this.fh, entry.subarray(0, first), logOffset + position);
    if (first < entry.length) await writeAll(this.fh, entry.subarray(first), logOffset);
  }

  /**
   * First modification of a session: a new FileWriteGuid (and DataWriteGuid), both headers.
   * @internal — for maintenance.ts, not part of the library surface.
   */
  async beginModification(userVisible: boolean): Promise<void> {
    this.assertWritable();
    const needData = userVisible && !this.dataGuidChanged;
    if (this.fileGuidChanged && !needData) return;
    await this.updateHeader(needData ? { dataWriteGuid: newGuid() } : {});
    await this.updateHeader({});
    if (needData) this.dataGuidChanged = true;
  }

  /** The update procedure of 2.2.2.1: write the non-current slot with SequenceNumber + 1, flush. */
  private async updateHeader(changes: Partial<VhdxHeader>): Promise<void> {
    const next: VhdxHeader = {
      ...this.header,
      ...changes,
      sequenceNumber: this.header.sequenceNumber + 1n,
      ...(this.fileGuidChanged ? {} : { fileWriteGuid: newGuid() }),
    };
    this.fileGuidChanged = true;
    const slot = (this.headerSlot ^ 1) as 0 | 1;
    await writeAll(this.fh, encodeHeader(next), HEADER_OFFSETS[slot]);
    await this.fh.sync();
    this.header = next;
    this.headerSlot = slot;
  }

  /**
   * Commits a new Virtual Disk Size (the metadata sector holding it, already patched) through the
   * log and adopts the new geometry, moving the BAT first when its region is too small.
   * @internal — for maintenance.ts, not part of the library surface.
   */
  async replaceVirtualSize(virtualDiskSize: number, metadataSector: { fileOffset: number; data: Buffer }): Promise<void> {
    await this.exclusive(async () => {
      const g = batGeometry({ ...this.meta, virtualDiskSize });
      await this.beginModification(true);
      if (g.entryCount * BAT_ENTRY_SIZE > this.regions.bat.length) {
        await this.relocateBat(alignUp(g.entryCount * BAT_ENTRY_SIZE, ALIGNMENT));
      }
      // New entries start NOT_PRESENT, committed before the size that makes them visible.
      const oldBytes = this.g.entryCount * BAT_ENTRY_SIZE;
      const needed = alignUp(g.entryCount * BAT_ENTRY_SIZE, LOG_SECTOR_SIZE);
      if (needed > this.bat.length) {
        const grown = Buffer.alloc(needed);
        this.bat.copy(grown);
        this.bat = grown;
      }
      if (g.entryCount * BAT_ENTRY_SIZE > oldBytes) {
        const stale = this.bat.subarray(oldBytes, g.entryCount * BAT_ENTRY_SIZE);
        if (stale.some((b) => b !== 0)) {
          stale.fill(0);
          for (let sec = Math.floor(oldBytes / LOG_SECTOR_SIZE); sec * LOG_SECTOR_SIZE < g.entryCount * BAT_ENTRY_SIZE; sec++) {
            this.dirtyBatSectors.add(sec);
          }
        }
      }
      await this.flushLocked();
      await this.commitMetadata([metadataSector]);
      this.meta = { ...this.meta, virtualDiskSize };
      this.g = g;
    });
  }

  /**
   * Moves the BAT to a new, larger region at the end of the file: the copy is made stable, then
   * both region tables are switched through the log (2.2.3). The old region is left unused.
   */
  private async relocateBat(newLength: number): Promise<void> {
    await this.flushLocked();
    const newOffset = await this.allocate(newLength);
    const content = Buffer.alloc(newLength);
    this.bat.copy(content);
    await writeAll(this.fh, content, newOffset);
    await this.fh.sync();
    const entries = this.regions.entries.map((e) => (e.guid === BAT_REGION_GUID ? { ...e, fileOffset: newOffset, length: newLength } : e));
    const table = encodeRegionTable(entries);
    const sectors: { fileOffset: number; data: Buffer }[] = [];
    for (const copy of REGION_TABLE_OFFSETS) {
      for (let at = 0; at < REGION_TABLE_SIZE; at += LOG_SECTOR_SIZE) {
        sectors.push({ fileOffset: copy + at, data: Buffer.from(table.subarray(at, at + LOG_SECTOR_SIZE)) });
      }
    }
    await this.commitMetadata(sectors);
    this.regions = parseRegionTable(table);
  }

  /**
   * Gives block `block` its own zero-filled space, FULLY_PRESENT (fixed disks after a grow).
   * @internal — for maintenance.ts, not part of the library surface.
   */
  async preallocateBlock(block: number): Promise<void> {
    await this.exclusive(async () => {
      this.assertWritable();
      if (this.blockMapping(block).state === PAYLOAD_BLOCK_FULLY_PRESENT) return;
      await this.beginModification(false);
      const offset = await this.allocate(this.g.blockSize);
      this.setPayload(block, { state: PAYLOAD_BLOCK_FULLY_PRESENT, fileOffset: offset });
    });
  }

  /**
   * Sets payload block `block` to `entry` (and commits at the next flush).
   * @internal — for maintenance.ts, not part of the library surface.
   */
  async setBlockMapping(block: number, entry: BatEntry, options: { userVisible: boolean }): Promise<void> {
    await this.exclusive(async () => {
      this.assertWritable();
      await this.beginModification(options.userVisible);
      this.setPayload(block, entry);
    });
  }

  /**
   * Runs `fn` with the file's write lock held (maintenance operations that move blocks).
   * @internal — for maintenance.ts, not part of the library surface.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Raw file write for maintenance operations (block moves); the caller keeps the ordering.
   * @internal — for maintenance.ts, not part of the library surface.
   */
  async writeFileBytes(data: Buffer, position: number): Promise<void> {
    this.assertWritable();
    await writeAll(this.fh, data, position);
  }

  /**
   * Truncates the file to `size` after clearing the log (2.3.1.1: a shrink must not look like truncation).
   * @internal — for maintenance.ts, not part of the library surface.
   */
  async truncateFile(size: number): Promise<void> {
    await this.exclusive(async () => {
      this.assertWritable();
      await this.flushLocked();
      if (this.header.logGuid !== ZERO_GUID) {
        await this.updateHeader({ logGuid: ZERO_GUID });
        this.sessionLogGuid = undefined;
        this.logHead = 0;
      }
      await this.fh.truncate(size);
      await this.fh.sync();
      this.fileEnd = size;
      this.stableSize = size;
    });
  }

  /** Flushes, marks the log empty, closes this file and its parents. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.readOnly && !this.poisoned) {
        await this.flush();
        if (this.header.logGuid !== ZERO_GUID) {
          await this.exclusive(async () => {
            await this.updateHeader({ logGuid: ZERO_GUID });
            await this.updateHeader({});
          });
        }
      }
    } finally {
      this.closed = true;
      await this.fh.close().catch(() => undefined);
      await this.parent?.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private assertOpen(): void {
    if (this.closed) throw vhdxError('vhdx-closed', `"${this.path}" is closed.`);
  }

  private assertWritable(): void {
    this.assertOpen();
    if (this.readOnly) {
      throw vhdxError('vhdx-read-only', `"${this.path}" was opened read-only.`, undefined, 'Open it with { readOnly: false } to write.');
    }
    if (this.poisoned) throw vhdxError('vhdx-closed', `"${this.path}" stopped after a simulated crash; reopen it.`);
  }

  private assertRange(position: number, length: number): void {
    if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0 || position + length > this.meta.virtualDiskSize) {
      throw vhdxError(
        'vhdx-out-of-range',
        `The range ${position}+${length} lies outside the ${quote(this.meta.virtualDiskSize)}-byte virtual disk.`,
        { position, length, virtualSize: this.meta.virtualDiskSize },
      );
    }
  }
}

async function openParent(childReal: string, meta: VhdxMetadata, chain: ChainContext, options: VhdxOpenOptions): Promise<VhdxFile> {
  const locator = meta.parentLocator!;
  const mismatches: string[] = [];
  for (const candidate of parentCandidates(dirname(childReal), locator)) {
    let real: string;
    try {
      real = await realpath(candidate);
    } catch {
      continue;
    }
    if (chain.seen.has(real)) {
      throw vhdxError('vhdx-parent-loop', `The parent of "${childReal}" is "${real}", which is already in the chain.`, {
        chain: [...chain.seen, real],
      });
    }
    const parent = await VhdxFile['openInChain'](real, { ...options, readOnly: true, hooks: {} }, chain);
    const linkage = parent.info.dataWriteGuid;
    if (linkage === locator.parentLinkage || linkage === locator.parentLinkage2) {
      if (parent.info.logicalSectorSize !== meta.logicalSectorSize) {
        await parent.close();
        throw vhdxError(
          'vhdx-parent-mismatch',
          `The parent "${real}" has ${parent.info.logicalSectorSize}-byte sectors, the child ${meta.logicalSectorSize}-byte ones; they must match.`,
        );
      }
      return parent;
    }
    mismatches.push(`${real} has DataWriteGuid ${linkage}`);
    await parent.close();
  }
  if (mismatches.length > 0) {
    throw vhdxError(
      'vhdx-parent-mismatch',
      `The parent must have DataWriteGuid ${locator.parentLinkage}, but ${mismatches.join('; ')}.`,
      { parentLinkage: locator.parentLinkage },
      'The parent was modified after the differencing disk was created; the chain is broken.',
    );
  }
  throw vhdxError(
    'vhdx-parent-not-found',
    `The parent of "${childReal}" was not found (relative_path ${JSON.stringify(locator.relativePath ?? null)}, absolute_win32_path ${JSON.stringify(locator.absoluteWin32Path ?? null)}).`,
    { entries: locator.entries },
    'Put the parent file where the locator points, or beside the differencing disk.',
  );
}

/** Applies a replay plan to the file, then marks the log empty (2.3.3). Returns the new header. */
async function replayOnDisk(
  fh: FileHandle,
  header: VhdxHeader,
  slot: 0 | 1,
  writes: readonly LogWrite[],
  minimumFileSize: number,
  fileSize: number,
): Promise<{ header: VhdxHeader; slot: 0 | 1 }> {
  // FileWriteGuid changes before log playback (2.2.2); both header slots are brought up to date.
  let current = header;
  let currentSlot = slot;
  const update = async (changes: Partial<VhdxHeader>) => {
    current = { ...current, ...changes, sequenceNumber: current.sequenceNumber + 1n };
    currentSlot = (currentSlot ^ 1) as 0 | 1;
    await writeAll(fh, encodeHeader(current), HEADER_OFFSETS[currentSlot]);
    await fh.sync();
  };
  await update({ fileWriteGuid: newGuid() });
  for (const w of writes) {
    if (w.kind === 'data') {
      await writeAll(fh, w.data, w.fileOffset);
      fileSize = Math.max(fileSize, w.fileOffset + w.data.length);
    } else {
      // Past the end of the file, extending it is zeroing it.
      const end = Math.min(w.fileOffset + w.length, Math.max(fileSize, w.fileOffset));
      for (let at = w.fileOffset; at < end; at += ZERO_CHUNK.length) {
        await writeAll(fh, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, end - at)), at);
      }
      if (w.fileOffset + w.length > fileSize) {
        await fh.truncate(w.fileOffset + w.length);
        fileSize = w.fileOffset + w.length;
      }
    }
  }
  if (fileSize < minimumFileSize) await fh.truncate(alignUp(minimumFileSize, ALIGNMENT));
  await fh.sync();
  await update({ logGuid: ZERO_GUID });
  return { header: current, slot: currentSlot };
}




