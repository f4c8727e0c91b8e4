/**
 * A VHD file opened for I/O: validation on open, reads at any offset for fixed, dynamic and
 * differencing disks (through the parent chain), and writes that allocate blocks at the end of
 * the file, move the footer behind them and update the BAT and sector bitmaps. A read-only open
 * never writes; a failed open never writes.
 */
import { open as openFile, realpath, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { batBytes, blockOffset, setBlockOffset, validateBat, BAT_ENTRY_SIZE, type BatGeometry, type OccupiedRange } from './bat.js';
import { DYNAMIC_HEADER_SIZE, parseDynamicHeader, encodeDynamicHeader, type DynamicHeader } from './dynamic-header.js';
import { inFile, quote, vhdError } from './errors.js';
import { encodeFooter, FOOTER_SIZE, geometrySize, parseFooter, type ChsGeometry, type VhdDiskType, type VhdFooter } from './footer.js';
import { alignUp, SECTOR_SIZE } from './layout.js';
import { checkLocatorEntry, decodeLocator, locatorExtent, parentCandidates, PLATFORM_NONE, type ParentLocator } from './parent-locator.js';
import { bitmapSize, runLength, setBits, testBit } from './sector-bitmap.js';
import { readFromParent, readInto, readExactly, writeAll } from '../file-io.js';

/**
 * Differencing writes copy up whole 4 KiB units (8 sectors, one bitmap byte). The spec allows
 * single sectors, but libvhdi (20210425) misreads a bitmap byte whose set bits end inside it, and
 * 4 KiB is every modern guest's I/O unit anyway.
 */
const COPY_UP_GRAIN = 4096;

/** Larger BATs are refused rather than read into memory (64 Mi entries: 128 TiB of 2 MiB blocks). */
const MAX_BAT_BYTES = 256 * 1024 * 1024;

/** Deeper chains than this are refused. */
export const MAX_CHAIN_DEPTH = 64;

export interface VhdOpenOptions {
  /** Default true. A read-only open never writes to the file. */
  readOnly?: boolean;
  /** Open the parent chain of a differencing disk (default true). Without it, reads that need it refuse. */
  openParent?: boolean;
}

export interface VhdInfo {
  readonly path: string;
  readonly diskType: VhdDiskType;
  /** The footer's current size: what Hyper-V, QEMU (for "win "/"qem2" files) and Visor expose. */
  readonly virtualSize: number;
  /** What the CHS geometry addresses: what Virtual PC (and QEMU for "vpc "/"qemu" files) expose. */
  readonly geometrySize: number;
  readonly geometry: ChsGeometry;
  readonly originalSize: number;
  /** 0 for a fixed disk. */
  readonly blockSize: number;
  readonly creatorApplication: string;
  readonly creatorVersion: number;
  /** 32 hex digits, as stored. */
  readonly uniqueId: string;
  /** Seconds since 2000-01-01T00:00:00Z. */
  readonly timestamp: number;
  readonly savedState: boolean;
  /** Which footer was used: the one at the end, or the copy at offset 0 when the end one is damaged. */
  readonly footerSource: 'end' | 'copy-at-start';
  readonly parentUniqueId: string | undefined;
  readonly parentName: string | undefined;
  readonly parentLocators: readonly ParentLocator[];
}

interface ChainContext {
  readonly seen: ReadonlySet<string>;
  readonly depth: number;
}

interface Dynamic {
  header: DynamicHeader;
  readonly headerOffset: number;
  bat: Buffer;
  g: BatGeometry;
}

export class VhdFile {
  private closed = false;
  private readonly bitmaps = new Map<number, Buffer>();
  private readonly dirtyBitmaps = new Set<number>();
  private readonly dirtyBatSectors = new Set<number>();
  private metadataDirty = false;
  private lock: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly readOnly: boolean,
    private footer: VhdFooter,
    private readonly footerSource: VhdInfo['footerSource'],
    private readonly dyn: Dynamic | undefined,
    /** Where the next block goes; the footer sits here. */
    private nextFree: number,
    private readonly locators: readonly ParentLocator[],
    /** The open parent of a differencing disk, if it was opened. */
    readonly parent: VhdFile | undefined,
  ) {}

  /** Opens and validates `path`; every failure is a VisorError naming the file. */
  static async open(path: string, options: VhdOpenOptions = {}): Promise<VhdFile> {
    return VhdFile.openInChain(path, options, { seen: new Set(), depth: 0 });
  }

  private static async openInChain(path: string, options: VhdOpenOptions, chain: ChainContext): Promise<VhdFile> {
    const readOnly = options.readOnly ?? true;
    let fh: FileHandle;
    try {
      fh = await openFile(path, readOnly ? 'r' : 'r+');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw vhdError('vhd-not-found', `No file exists at "${path}".`, { path });
      }
      throw inFile(path, error);
    }
    try {
      return await VhdFile.parse(path, fh, readOnly, options, chain);
    } catch (error) {
      await fh.close().catch(() => undefined);
      throw inFile(path, error);
    }
  }

  private static async parse(path: string, fh: FileHandle, readOnly: boolean, options: VhdOpenOptions, chain: ChainContext): Promise<VhdFile> {
    const { size: fileSize } = await fh.stat();
    if (fileSize < FOOTER_SIZE) {
      throw vhdError('vhd-truncated', `The file is ${fileSize} bytes, shorter than the 512-byte footer.`, { fileSize });
    }
    // The footer at the end; for dynamic disks the copy at offset 0 stands in when it is damaged.
    let footer: VhdFooter;
    let footerSource: VhdInfo['footerSource'] = 'end';
    try {
      footer = parseFooter(await readExactly(fh, fileSize - FOOTER_SIZE, FOOTER_SIZE), 'the footer at the end');
    } catch (atEnd) {
      let copy: VhdFooter;
      try {
        copy = parseFooter(await readExactly(fh, 0, FOOTER_SIZE), 'the footer copy at offset 0');
      } catch {
        throw atEnd;
      }
      if (copy.diskType === 'fixed') throw atEnd;
      footer = copy;
      footerSource = 'copy-at-start';
    }
    const dataLimit = footerSource === 'end' ? fileSize - FOOTER_SIZE : fileSize;

    if (footer.diskType === 'fixed') {
      if (dataLimit < footer.currentSize) {
        throw vhdError(
          'vhd-truncated',
          `The fixed disk's footer gives a virtual size of ${quote(footer.currentSize)} bytes, but only ${quote(dataLimit)} bytes precede it.`,
          { currentSize: footer.currentSize, fileSize },
        );
      }
      return new VhdFile(path, fh, readOnly, footer, footerSource, undefined, footer.currentSize, [], undefined);
    }

    const headerOffset = footer.dataOffset;
    if (headerOffset === undefined || headerOffset < FOOTER_SIZE || headerOffset % SECTOR_SIZE !== 0 || headerOffset + DYNAMIC_HEADER_SIZE > dataLimit) {
      throw vhdError(
        'vhd-bad-header-offset',
        `The footer puts the dynamic header at ${headerOffset === undefined ? 'no offset (0xFFFFFFFFFFFFFFFF)' : quote(headerOffset)}; a ${footer.diskType} disk needs it sector-aligned inside the ${quote(fileSize)}-byte file, after the footer copy.`,
        { dataOffset: headerOffset ?? null, fileSize },
      );
    }
    const header = parseDynamicHeader(await readExactly(fh, headerOffset, DYNAMIC_HEADER_SIZE), dataLimit);
    const blockCount = Math.ceil(footer.currentSize / header.blockSize);
    if (header.maxTableEntries < blockCount) {
      throw vhdError(
        'vhd-bat-too-small',
        `The BAT has ${quote(header.maxTableEntries)} entries; a ${quote(footer.currentSize)}-byte disk with ${quote(header.blockSize)}-byte blocks needs ${quote(blockCount)}.`,
        { maxTableEntries: header.maxTableEntries, needed: blockCount },
      );
    }
    if (batBytes(header.maxTableEntries) > MAX_BAT_BYTES) {
      throw vhdError(
        'vhd-bat-too-large',
        `The BAT has ${quote(header.maxTableEntries)} entries (${quote(batBytes(header.maxTableEntries))} bytes); more than 256 MiB of BAT is refused.`,
        { maxTableEntries: header.maxTableEntries },
      );
    }
    const tableBytes = Math.min(batBytes(header.maxTableEntries), dataLimit - header.tableOffset);
    const bat = await readExactly(fh, header.tableOffset, tableBytes, batBytes(header.maxTableEntries));
    const g: BatGeometry = { blockSize: header.blockSize, bitmapSize: bitmapSize(header.blockSize), blockCount };

    const occupied: OccupiedRange[] = [
      { name: 'footer copy', offset: 0, length: FOOTER_SIZE },
      { name: 'dynamic header', offset: headerOffset, length: DYNAMIC_HEADER_SIZE },
      { name: 'BAT', offset: header.tableOffset, length: batBytes(header.maxTableEntries) },
    ];
    const locators: ParentLocator[] = [];
    for (const [i, entry] of header.locators.entries()) {
      if (entry.platformCode === PLATFORM_NONE) continue;
      checkLocatorEntry(entry, i, dataLimit);
      const extent = locatorExtent(entry);
      occupied.push({ name: `parent locator ${i}`, offset: extent.offset, length: Math.min(extent.length, dataLimit - extent.offset) });
      locators.push(decodeLocator(entry.platformCode, await readExactly(fh, entry.platformDataOffset, entry.platformDataLength)));
    }
    const lastBlockEnd = validateBat(bat, g, dataLimit, occupied);
    const metadataEnd = Math.max(...occupied.map((r) => r.offset + r.length));
    const nextFree = alignUp(Math.max(lastBlockEnd, metadataEnd, fileSize - FOOTER_SIZE), SECTOR_SIZE);

    let parent: VhdFile | undefined;
    const real = await realpath(path);
    if (chain.seen.has(real)) {
      throw vhdError('vhd-parent-loop', `The differencing chain comes back to "${real}", which is already in it.`, { chain: [...chain.seen, real] });
    }
    if (footer.diskType === 'differencing' && options.openParent !== false) {
      if (chain.depth + 1 > MAX_CHAIN_DEPTH) {
        throw vhdError('vhd-chain-too-deep', `The differencing chain is deeper than ${MAX_CHAIN_DEPTH} files.`, { depth: chain.depth });
      }
      parent = await openParent(real, header, locators, { seen: new Set([...chain.seen, real]), depth: chain.depth + 1 });
    }
    const file = new VhdFile(path, fh, readOnly, footer, footerSource, { header, headerOffset, bat, g }, nextFree, locators, parent);
    // A writable open of a file whose end footer is damaged rewrites it at the first flush.
    if (footerSource === 'copy-at-start' && !readOnly) file.metadataDirty = true;
    return file;
  }

  get info(): VhdInfo {
    const f = this.footer;
    const h = this.dyn?.header;
    return {
      path: this.path,
      diskType: f.diskType,
      virtualSize: f.currentSize,
      geometrySize: geometrySize(f.geometry),
      geometry: f.geometry,
      originalSize: f.originalSize,
      blockSize: h?.blockSize ?? 0,
      creatorApplication: f.creatorApplication,
      creatorVersion: f.creatorVersion,
      uniqueId: f.uniqueId,
      timestamp: f.timestamp,
      savedState: f.savedState,
      footerSource: this.footerSource,
      parentUniqueId: f.diskType === 'differencing' ? h?.parentUniqueId : undefined,
      parentName: f.diskType === 'differencing' ? h?.parentName : undefined,
      parentLocators: this.locators,
    };
  }

  get virtualSize(): number {
    return this.footer.currentSize;
  }

  get diskType(): VhdDiskType {
    return this.footer.diskType;
  }

  /** Block geometry of a dynamic or differencing disk; undefined for a fixed one. */
  get geometry(): BatGeometry | undefined {
    return this.dyn?.g;
  }

  /** File offset of block `block`'s sector bitmap (its data follows), or undefined when unallocated. */
  blockFileOffset(block: number): number | undefined {
    const d = this.dynamic();
    return blockOffset(d.bat, block);
  }

  /** Whether block `block` can hold data anywhere in the chain (false means it reads as zeros). */
  blockMayHoldData(block: number): boolean {
    const d = this.dyn;
    if (!d) return true;
    if (blockOffset(d.bat, block) !== undefined) return true;
    if (this.footer.diskType !== 'differencing' || !this.parent) return false;
    const pos = block * d.g.blockSize;
    if (pos >= this.parent.virtualSize) return false;
    const pg = this.parent.dyn?.g;
    if (!pg) return true;
    const end = Math.min(pos + d.g.blockSize, this.parent.virtualSize);
    for (let b = Math.floor(pos / pg.blockSize); b * pg.blockSize < end; b++) if (this.parent.blockMayHoldData(b)) return true;
    return false;
  }

  /** Whether any block overlapping [position, position + length) may hold data (see blockMayHoldData). */
  blockMayHoldDataAt(position: number, length: number): boolean {
    const g = this.dyn?.g;
    if (!g) return true;
    for (let b = Math.floor(position / g.blockSize); b * g.blockSize < position + length; b++) if (this.blockMayHoldData(b)) return true;
    return false;
  }

  /** The sector bitmap of an allocated block (a copy), or undefined when it is not allocated. */
  async sectorBitmap(block: number): Promise<Buffer | undefined> {
    const d = this.dynamic();
    if (blockOffset(d.bat, block) === undefined) return undefined;
    return Buffer.from(await this.loadBitmap(block));
  }

  /** Reads file bytes (not virtual-disk bytes) at `position`; past the end reads zeros. */
  async readFileBytes(buf: Buffer, position: number): Promise<void> {
    this.assertOpen();
    await readInto(this.fh, buf, position);
  }

  /** Reads `length` bytes of the virtual disk at `position`. */
  async read(position: number, length: number): Promise<Buffer> {
    this.assertRange(position, length);
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(buf, position);
    return buf;
  }

  /** Fills `buf` with the virtual disk's bytes from `position`. */
  async readInto(buf: Buffer, position: number): Promise<void> {
    this.assertOpen();
    this.assertRange(position, buf.length);
    const d = this.dyn;
    if (!d) return readInto(this.fh, buf, position);
    const bs = d.g.blockSize;
    let done = 0;
    while (done < buf.length) {
      const pos = position + done;
      const block = Math.floor(pos / bs);
      const inBlock = pos - block * bs;
      const n = Math.min(bs - inBlock, buf.length - done);
      await this.readBlockRange(block, inBlock, buf.subarray(done, done + n));
      done += n;
    }
  }

  private async readBlockRange(block: number, inBlock: number, out: Buffer): Promise<void> {
    const d = this.dynamic();
    const offset = blockOffset(d.bat, block);
    const virtual = block * d.g.blockSize + inBlock;
    const differencing = this.footer.diskType === 'differencing';
    if (offset === undefined) {
      if (differencing) return this.readParent(out, virtual);
      out.fill(0);
      return;
    }
    const data = offset + d.g.bitmapSize;
    if (!differencing) return readInto(this.fh, out, data + inBlock);
    const bitmap = await this.loadBitmap(block);
    const sectors = d.g.blockSize / SECTOR_SIZE;
    let off = inBlock;
    const end = inBlock + out.length;
    while (off < end) {
      const sector = Math.floor(off / SECTOR_SIZE);
      const runEnd = Math.min(end, (sector + runLength(bitmap, sector, sectors)) * SECTOR_SIZE);
      const part = out.subarray(off - inBlock, runEnd - inBlock);
      if (testBit(bitmap, sector)) await readInto(this.fh, part, data + off);
      else await this.readParent(part, block * d.g.blockSize + off);
      off = runEnd;
    }
  }

  private async readParent(out: Buffer, position: number): Promise<void> {
    if (!this.parent) {
      throw vhdError(
        'vhd-parent-not-found',
        `"${this.path}" is a differencing disk opened without its parent, so its unchanged sectors cannot be read.`,
      );
    }
    return readFromParent(this.parent, out, position);
  }

  private async loadBitmap(block: number): Promise<Buffer> {
    const cached = this.bitmaps.get(block);
    if (cached) return cached;
    const d = this.dynamic();
    const buf = Buffer.alloc(d.g.bitmapSize);
    const offset = blockOffset(d.bat, block);
    if (offset !== undefined) await readInto(this.fh, buf, offset);
    this.bitmaps.set(block, buf);
    return buf;
  }

  // ---- writing -------------------------------------------------------------------------------

  /** Writes `data` at virtual offset `position`. Durable after `flush()`. */
  async write(data: Buffer, position: number): Promise<void> {
    return this.exclusive(async () => {
      this.assertWritable();
      this.assertRange(position, data.length);
      if (data.length === 0) return;
      const d = this.dyn;
      if (!d) return writeAll(this.fh, data, position);
      const bs = d.g.blockSize;
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
    const d = this.dynamic();
    const differencing = this.footer.diskType === 'differencing';
    let offset = blockOffset(d.bat, block);
    if (offset === undefined) {
      const whole = inBlock === 0 && data.length === d.g.blockSize;
      // Dynamic blocks are all "present" (bitmap all ones, like Virtual PC and QEMU); a
      // differencing block starts empty and gains bits as sectors are written.
      const bitmap = Buffer.alloc(d.g.bitmapSize, differencing && !whole ? 0 : 0xff);
      offset = await this.allocateBlock(block, bitmap);
    }
    if (!differencing) return writeAll(this.fh, data, offset + d.g.bitmapSize + inBlock);
    // Differencing: whole copy-up units only (COPY_UP_GRAIN); a partial unit is first filled
    // with what the disk reads there now (this file's sectors, else the parent's).
    const bitmap = await this.loadBitmap(block);
    const grain = Math.min(COPY_UP_GRAIN, d.g.blockSize);
    const start = Math.floor(inBlock / grain) * grain;
    const end = Math.ceil((inBlock + data.length) / grain) * grain;
    const aligned = Buffer.alloc(end - start);
    if (inBlock !== start) await this.readBlockRange(block, start, aligned.subarray(0, grain));
    if (inBlock + data.length !== end && (end - grain > start || inBlock === start)) {
      await this.readBlockRange(block, end - grain, aligned.subarray(aligned.length - grain));
    }
    data.copy(aligned, inBlock - start);
    await writeAll(this.fh, aligned, offset + d.g.bitmapSize + start);
    const [startSector, endSector] = [start / SECTOR_SIZE, end / SECTOR_SIZE];
    if (!testBit(bitmap, startSector) || runLength(bitmap, startSector, endSector) < endSector - startSector) {
      setBits(bitmap, startSector, endSector);
      this.dirtyBitmaps.add(block);
    }
  }

  /** Puts a new block where the footer was and the footer after it; the BAT entry follows at flush. */
  private async allocateBlock(block: number, bitmap: Buffer): Promise<number> {
    const d = this.dynamic();
    const offset = this.nextFree;
    const end = offset + d.g.bitmapSize + d.g.blockSize;
    if (end / SECTOR_SIZE > 0xffff_fffe) {
      throw vhdError('vhd-bad-argument', `The file would grow past the 2 TiB a VHD BAT can address (block ${block} at ${quote(offset)}).`);
    }
    await this.fh.truncate(end + FOOTER_SIZE);
    await writeAll(this.fh, bitmap, offset);
    await writeAll(this.fh, encodeFooter(this.footer), end);
    this.nextFree = end;
    this.bitmaps.set(block, bitmap);
    setBlockOffset(d.bat, block, offset);
    this.dirtyBatSectors.add(Math.floor((block * BAT_ENTRY_SIZE) / SECTOR_SIZE));
    return offset;
  }

  /** Makes written data durable, then the bitmaps, the BAT and (if changed) the footers and header. */
  async flush(): Promise<void> {
    return this.exclusive(() => this.flushLocked());
  }

  private async flushLocked(): Promise<void> {
    this.assertOpen();
    if (this.readOnly) return;
    const d = this.dyn;
    await this.fh.datasync();
    if (!d) {
      if (this.metadataDirty) {
        // A fixed disk's only metadata is its footer, right after the data.
        await this.fh.truncate(this.nextFree + FOOTER_SIZE);
        await writeAll(this.fh, encodeFooter(this.footer), this.nextFree);
        this.metadataDirty = false;
        await this.fh.datasync();
      }
      return;
    }
    if (this.dirtyBitmaps.size === 0 && this.dirtyBatSectors.size === 0 && !this.metadataDirty) return;
    for (const block of [...this.dirtyBitmaps].sort((a, b) => a - b)) {
      const offset = blockOffset(d.bat, block);
      if (offset !== undefined) await writeAll(this.fh, this.bitmaps.get(block)!, offset);
    }
    this.dirtyBitmaps.clear();
    for (const s of [...this.dirtyBatSectors].sort((a, b) => a - b)) {
      await writeAll(this.fh, d.bat.subarray(s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE), d.header.tableOffset + s * SECTOR_SIZE);
    }
    this.dirtyBatSectors.clear();
    if (this.metadataDirty) {
      await writeAll(this.fh, encodeDynamicHeader(d.header), d.headerOffset);
      const footer = encodeFooter(this.footer);
      await writeAll(this.fh, footer, 0);
      await writeAll(this.fh, footer, this.nextFree);
      await this.fh.truncate(this.nextFree + FOOTER_SIZE);
      this.metadataDirty = false;
    }
    await this.fh.datasync();
  }

  // ---- maintenance (compact, resize, merge): not part of the index.ts surface ---------------

  /** Runs `fn` with the file's write lock held. @internal */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /** The on-disk layout facts maintenance needs. Call under `exclusive`. @internal */
  get layout(): { nextFree: number; header: DynamicHeader | undefined; headerOffset: number | undefined; footer: VhdFooter } {
    return { nextFree: this.nextFree, header: this.dyn?.header, headerOffset: this.dyn?.headerOffset, footer: this.footer };
  }

  /** Raw file write for maintenance; the caller keeps the ordering. @internal */
  async writeFileBytes(data: Buffer, position: number): Promise<void> {
    this.assertWritable();
    await writeAll(this.fh, data, position);
  }

  /** Points block `block` at `offset` (or frees it); written at the next flush. @internal */
  setBlockFileOffset(block: number, offset: number | undefined): void {
    this.assertWritable();
    const d = this.dynamic();
    setBlockOffset(d.bat, block, offset);
    this.bitmaps.delete(block);
    this.dirtyBitmaps.delete(block);
    this.dirtyBatSectors.add(Math.floor((block * BAT_ENTRY_SIZE) / SECTOR_SIZE));
  }

  /** Moves the end of the data area (where the footer goes) and rewrites both footers at flush. @internal */
  setDataEnd(nextFree: number): void {
    this.assertWritable();
    this.nextFree = nextFree;
    this.metadataDirty = true;
  }

  /** Replaces the footer, the header and the BAT (resize); all are written at flush. @internal */
  replaceMetadata(footer: VhdFooter, header?: DynamicHeader, bat?: Buffer): void {
    this.assertWritable();
    this.footer = footer;
    const d = this.dyn;
    if (d && header && bat) {
      d.header = header;
      d.bat = bat;
      d.g = { blockSize: header.blockSize, bitmapSize: d.g.bitmapSize, blockCount: Math.ceil(footer.currentSize / header.blockSize) };
      for (let s = 0; s * SECTOR_SIZE < bat.length; s++) this.dirtyBatSectors.add(s);
    }
    if (!d) this.nextFree = footer.currentSize;
    this.metadataDirty = true;
  }

  /** Flushes under the lock (for maintenance code that already holds it). @internal */
  async flushHeld(): Promise<void> {
    await this.flushLocked();
  }

  /** Flushes and closes this file and its parents. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.readOnly) await this.flush();
    } finally {
      this.closed = true;
      await this.fh.close().catch(() => undefined);
      await this.parent?.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private dynamic(): Dynamic {
    if (!this.dyn) throw vhdError('vhd-bad-argument', `"${this.path}" is a fixed disk; it has no blocks.`);
    return this.dyn;
  }

  private assertOpen(): void {
    if (this.closed) throw vhdError('vhd-closed', `"${this.path}" is closed.`);
  }

  private assertWritable(): void {
    this.assertOpen();
    if (this.readOnly) {
      throw vhdError('vhd-read-only', `"${this.path}" was opened read-only.`, undefined, 'Open it with { readOnly: false } to write.');
    }
  }

  private assertRange(position: number, length: number): void {
    const size = this.footer.currentSize;
    if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0 || position + length > size) {
      throw vhdError('vhd-out-of-range', `The range ${position}+${length} lies outside the ${quote(size)}-byte virtual disk.`, {
        position,
        length,
        virtualSize: size,
      });
    }
  }
}

async function openParent(childReal: string, header: DynamicHeader, locators: readonly ParentLocator[], chain: ChainContext): Promise<VhdFile> {
  const mismatches: string[] = [];
  for (const candidate of parentCandidates(dirname(childReal), locators, header.parentName)) {
    let real: string;
    try {
      real = await realpath(candidate);
    } catch {
      continue;
    }
    if (chain.seen.has(real)) {
      throw vhdError('vhd-parent-loop', `The parent of "${childReal}" is "${real}", which is already in the chain.`, { chain: [...chain.seen, real] });
    }
    const parent = await VhdFile['openInChain'](real, { readOnly: true }, chain);
    if (parent.info.uniqueId === header.parentUniqueId) return parent;
    mismatches.push(`"${real}" has unique id ${parent.info.uniqueId}`);
    await parent.close();
  }
  if (mismatches.length > 0) {
    throw vhdError(
      'vhd-parent-mismatch',
      `The parent must have unique id ${header.parentUniqueId}, but ${mismatches.join('; ')}.`,
      { parentUniqueId: header.parentUniqueId },
      'The file the locators lead to is not the disk this one was made from; the chain is broken.',
    );
  }
  throw vhdError(
    'vhd-parent-not-found',
    `The parent of "${childReal}" was not found (name ${JSON.stringify(header.parentName)}, locators ${JSON.stringify(locators.map((l) => `${l.platform}:${l.path ?? ''}`))}).`,
    { parentName: header.parentName },
    'Put the parent file where the locators point, or beside the differencing disk.',
  );
}



