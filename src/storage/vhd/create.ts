/**
 * Creating fixed, dynamic and differencing VHD files. The size is stored exactly (QEMU's
 * `force_size` semantics) with the CHS geometry the spec's algorithm gives for it. Layout of a
 * dynamic disk: footer copy (512 B) | dynamic header (1 KiB) | BAT (sector-padded) | parent
 * locator data (differencing only) | blocks | footer. The footer at the end is written last, so
 * a half-created file never passes for a whole one; on failure the file is removed.
 */
import { randomBytes } from 'node:crypto';
import { open as openFile, realpath, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, relative, resolve } from 'node:path';
import { batBytes } from './bat.js';
import { DEFAULT_BLOCK_SIZE, DYNAMIC_HEADER_SIZE, encodeDynamicHeader, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, type ParentLocatorEntry } from './dynamic-header.js';
import { quote, vhdError } from './errors.js';
import { chsGeometry, encodeFooter, FEATURES_RESERVED, FOOTER_SIZE, HOST_OS_WINDOWS, UNIQUE_ID_SIZE, type VhdFooter } from './footer.js';
import { alignUp, MAX_VIRTUAL_SIZE, SECTOR_SIZE, vhdTimestamp } from './layout.js';
import { encodeLocators } from './parent-locator.js';
import { VhdFile } from './vhd-file.js';

export { DEFAULT_BLOCK_SIZE } from './dynamic-header.js';

/**
 * The creator application we write. QEMU sizes a VHD by its CHS geometry unless the creator is
 * one it knows to use the current-size field ("win ", "qem2", "d2v ", "CTXS", "tap"); Hyper-V
 * always uses the current size. "win " makes every reader see the exact size we store.
 */
export const DEFAULT_CREATOR = 'win ';
/** Creator version written with DEFAULT_CREATOR (Hyper-V's 10.0). */
const CREATOR_VERSION = 0x000a_0000;
const HEADER_OFFSET = FOOTER_SIZE;
const TABLE_OFFSET = HEADER_OFFSET + DYNAMIC_HEADER_SIZE;

export type CreateVhdOptions =
  | ({ type: 'fixed' | 'dynamic'; size: number } & CommonCreateOptions)
  | ({ type: 'differencing'; parentPath: string } & CommonCreateOptions);

interface CommonCreateOptions {
  /** Dynamic and differencing only. Default 2 MiB (a differencing disk: its parent's). */
  blockSize?: number;
  /** Four ASCII characters for the footer's creator application. Default DEFAULT_CREATOR. */
  creator?: string;
  /** Replace an existing file (default: refuse). */
  overwrite?: boolean;
}

/** Creates a VHD at `path`. A differencing disk takes its size from its parent. */
export async function createVhd(path: string, options: CreateVhdOptions): Promise<void> {
  let size: number;
  let blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  let parentFacts: { uniqueId: string; timestamp: number; name: string; locators: { code: number; data: Buffer }[] } | undefined;
  if (options.type === 'differencing') {
    const parent = await VhdFile.open(options.parentPath, { readOnly: true });
    try {
      size = parent.virtualSize;
      if (options.blockSize === undefined && parent.info.blockSize > 0) blockSize = parent.info.blockSize;
      const parentReal = await realpath(options.parentPath);
      const childDir = await realpath(resolve(dirname(path)));
      const { mtime } = await stat(parentReal);
      parentFacts = {
        uniqueId: parent.info.uniqueId,
        timestamp: vhdTimestamp(mtime),
        name: basename(parentReal),
        locators: encodeLocators(relative(childDir, parentReal), parentReal),
      };
    } finally {
      await parent.close();
    }
  } else {
    size = options.size;
  }
  if (!Number.isSafeInteger(size) || size <= 0 || size % SECTOR_SIZE !== 0 || size > MAX_VIRTUAL_SIZE) {
    throw badArgument(`The size must be a positive multiple of 512 bytes up to 2040 GiB: current value is ${quote(size)}.`, 'size');
  }
  if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw badArgument(`The block size must be a power of two from 512 bytes to 256 MiB: current value is ${quote(blockSize)}.`, 'blockSize');
  }
  const creator = options.creator ?? DEFAULT_CREATOR;
  if (!/^[\x20-\x7e]{1,4}$/.test(creator)) {
    throw badArgument(`The creator must be 1-4 printable ASCII characters: current value is ${JSON.stringify(creator)}.`, 'creator');
  }
  const footer: VhdFooter = {
    features: FEATURES_RESERVED,
    dataOffset: options.type === 'fixed' ? undefined : HEADER_OFFSET,
    timestamp: vhdTimestamp(),
    creatorApplication: creator,
    creatorVersion: CREATOR_VERSION,
    creatorHostOs: HOST_OS_WINDOWS,
    originalSize: size,
    currentSize: size,
    geometry: chsGeometry(size),
    diskType: options.type,
    uniqueId: randomBytes(UNIQUE_ID_SIZE).toString('hex'),
    savedState: false,
  };
  const encodedFooter = encodeFooter(footer);

  let fh: FileHandle;
  try {
    fh = await openFile(path, options.overwrite ? 'w' : 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw vhdError('vhd-bad-argument', `A file already exists at "${path}".`, { path }, 'Choose another path or pass { overwrite: true }.');
    }
    throw error;
  }
  try {
    if (options.type === 'fixed') {
      await fh.truncate(size + FOOTER_SIZE);
      await fh.sync();
      await fh.write(encodedFooter, 0, FOOTER_SIZE, size);
    } else {
      const entries = Math.ceil(size / blockSize);
      const bat = Buffer.alloc(batBytes(entries), 0xff); // all BAT_UNUSED: no block allocated
      let cursor = TABLE_OFFSET + bat.length;
      const locators: ParentLocatorEntry[] = [];
      const locatorData: { offset: number; data: Buffer }[] = [];
      for (const l of parentFacts?.locators ?? []) {
        const space = alignUp(Math.max(l.data.length, 1), SECTOR_SIZE);
        // Space in bytes, as Windows writes it (the spec says sectors; readers accept both).
        locators.push({ platformCode: l.code, platformDataSpace: space, platformDataLength: l.data.length, platformDataOffset: cursor });
        locatorData.push({ offset: cursor, data: l.data });
        cursor += space;
      }
      const header = encodeDynamicHeader({
        tableOffset: TABLE_OFFSET,
        maxTableEntries: entries,
        blockSize,
        parentUniqueId: parentFacts?.uniqueId ?? '00'.repeat(UNIQUE_ID_SIZE),
        parentTimestamp: parentFacts?.timestamp ?? 0,
        parentName: parentFacts?.name ?? '',
        locators,
      });
      await fh.truncate(cursor + FOOTER_SIZE);
      await fh.write(encodedFooter, 0, FOOTER_SIZE, 0);
      await fh.write(header, 0, header.length, HEADER_OFFSET);
      await fh.write(bat, 0, bat.length, TABLE_OFFSET);
      for (const l of locatorData) await fh.write(l.data, 0, l.data.length, l.offset);
      await fh.sync();
      await fh.write(encodedFooter, 0, FOOTER_SIZE, cursor);
    }
    await fh.sync();
    await fh.close();
  } catch (error) {
    await fh.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw error;
  }
}

function badArgument(message: string, option: string) {
  return vhdError('vhd-bad-argument', message, { option });
}
