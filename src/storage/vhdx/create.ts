/**
 * Creating fixed, dynamic and differencing VHDX files. Layout: header section (1 MiB), log
 * (1 MiB), metadata region (1 MiB), BAT (rounded up to 1 MiB), then payload blocks. Headers are
 * written last, so a half-created file never looks valid; on failure the file is removed.
 */
import { open as openFile, realpath, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { batGeometry, BAT_ENTRY_SIZE, payloadEntryIndex, PAYLOAD_BLOCK_FULLY_PRESENT, writeBatEntry } from './bat.js';
import { quote, vhdxError } from './errors.js';
import { encodeFileIdentifier } from './file-identifier.js';
import { newGuid, ZERO_GUID } from './guid.js';
import { encodeHeader, HEADER_OFFSETS, HEADER_VERSION, LOG_VERSION } from './header.js';
import { alignUp, ALIGNMENT, HEADER_SECTION_SIZE, MAX_VIRTUAL_DISK_SIZE, MiB } from './layout.js';
import { encodeMetadataRegion, MAX_BLOCK_SIZE, metadataItems, MIN_BLOCK_SIZE, type VhdxMetadata } from './metadata.js';
import { encodeParentLocator, linkageText, win32PathFor } from './parent-locator.js';
import { BAT_REGION_GUID, encodeRegionTable, METADATA_REGION_GUID, REGION_TABLE_OFFSETS } from './region-table.js';
import { VhdxFile } from './vhdx-file.js';

export const DEFAULT_BLOCK_SIZE = 32 * MiB;
/** Hyper-V's block size for differencing disks: small blocks keep copy-on-write cheap. */
export const DEFAULT_DIFFERENCING_BLOCK_SIZE = 2 * MiB;
export const DEFAULT_LOG_SIZE = 1 * MiB;
const METADATA_REGION_SIZE = 1 * MiB;

export type CreateVhdxOptions =
  | ({ type: 'fixed' | 'dynamic'; size: number } & CommonCreateOptions)
  | ({ type: 'differencing'; parentPath: string } & CommonCreateOptions);

interface CommonCreateOptions {
  blockSize?: number;
  logicalSectorSize?: 512 | 4096;
  physicalSectorSize?: 512 | 4096;
  /** Written into the file identifier. Default "Visor". */
  creator?: string;
  /** Replace an existing file (default: refuse). */
  overwrite?: boolean;
}

/** Creates a VHDX at `path`. A differencing disk takes its size and sector size from its parent. */
export async function createVhdx(path: string, options: CreateVhdxOptions): Promise<void> {
  let size: number;
  let logicalSectorSize = options.logicalSectorSize ?? 512;
  let physicalSectorSize = options.physicalSectorSize ?? 4096;
  let locator: Buffer | undefined;
  if (options.type === 'differencing') {
    const parent = await VhdxFile.open(options.parentPath, { readOnly: true });
    try {
      size = parent.virtualSize;
      if (options.logicalSectorSize !== undefined && options.logicalSectorSize !== parent.info.logicalSectorSize) {
        throw badArgument(`A differencing disk must have its parent's ${parent.info.logicalSectorSize}-byte logical sectors, not ${options.logicalSectorSize}.`);
      }
      logicalSectorSize = parent.info.logicalSectorSize;
      physicalSectorSize = options.physicalSectorSize ?? parent.info.physicalSectorSize;
      const parentReal = await realpath(options.parentPath);
      const childDir = resolve(dirname(path));
      let rel = relative(await realpath(childDir), parentReal).replace(/\//g, '\\');
      if (!rel.startsWith('..')) rel = `.\\${rel}`;
      locator = encodeParentLocator({
        parent_linkage: linkageText(parent.info.dataWriteGuid),
        relative_path: rel,
        absolute_win32_path: win32PathFor(parentReal),
      });
    } finally {
      await parent.close();
    }
  } else {
    size = options.size;
  }
  const blockSize = options.blockSize ?? (options.type === 'differencing' ? DEFAULT_DIFFERENCING_BLOCK_SIZE : DEFAULT_BLOCK_SIZE);
  if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw badArgument(`The block size must be a power of two from 1 MiB to 256 MiB: current value is ${quote(blockSize)}.`);
  }
  for (const s of [logicalSectorSize, physicalSectorSize]) {
    if (s !== 512 && s !== 4096) throw badArgument(`Sector sizes must be 512 or 4096: current value is ${s}.`);
  }
  if (!Number.isSafeInteger(size) || size <= 0 || size > MAX_VIRTUAL_DISK_SIZE || size % logicalSectorSize !== 0) {
    throw badArgument(`The size must be a positive multiple of ${logicalSectorSize} bytes up to 64 TiB: current value is ${size}.`);
  }
  const meta: VhdxMetadata = {
    blockSize,
    leaveBlocksAllocated: options.type === 'fixed',
    hasParent: options.type === 'differencing',
    virtualDiskSize: size,
    virtualDiskId: newGuid(),
    logicalSectorSize,
    physicalSectorSize,
  };
  const g = batGeometry(meta);
  const logOffset = HEADER_SECTION_SIZE;
  const metadataOffset = logOffset + DEFAULT_LOG_SIZE;
  const batOffset = metadataOffset + METADATA_REGION_SIZE;
  const batLength = alignUp(g.entryCount * BAT_ENTRY_SIZE, ALIGNMENT);
  let fileEnd = batOffset + batLength;
  const bat = Buffer.alloc(batLength);
  if (options.type === 'fixed') {
    for (let block = 0; block < g.dataBlockCount; block++) {
      writeBatEntry(bat, payloadEntryIndex(g, block), { state: PAYLOAD_BLOCK_FULLY_PRESENT, fileOffset: fileEnd });
      fileEnd += blockSize;
    }
  }
  const regions = encodeRegionTable([
    { guid: BAT_REGION_GUID, fileOffset: batOffset, length: batLength, required: true },
    { guid: METADATA_REGION_GUID, fileOffset: metadataOffset, length: METADATA_REGION_SIZE, required: true },
  ]);
  const header = {
    sequenceNumber: 0n,
    fileWriteGuid: newGuid(),
    dataWriteGuid: newGuid(),
    logGuid: ZERO_GUID,
    logVersion: LOG_VERSION,
    version: HEADER_VERSION,
    logLength: DEFAULT_LOG_SIZE,
    logOffset,
  };
  let fh: FileHandle;
  try {
    fh = await openFile(path, options.overwrite ? 'w' : 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw vhdxError('vhdx-bad-argument', `A file already exists at "${path}".`, { path }, 'Choose another path or pass { overwrite: true }.');
    }
    throw error;
  }
  try {
    await fh.truncate(fileEnd);
    await fh.write(encodeFileIdentifier({ creator: options.creator ?? 'Visor' }), 0, undefined, 0);
    await fh.write(encodeMetadataRegion(metadataItems(meta, locator), METADATA_REGION_SIZE), 0, undefined, metadataOffset);
    await fh.write(bat, 0, undefined, batOffset);
    for (const offset of REGION_TABLE_OFFSETS) await fh.write(regions, 0, undefined, offset);
    await fh.sync();
    await fh.write(encodeHeader(header), 0, undefined, HEADER_OFFSETS[0]);
    await fh.write(encodeHeader({ ...header, sequenceNumber: 1n }), 0, undefined, HEADER_OFFSETS[1]);
    await fh.sync();
    await fh.close();
  } catch (error) {
    await fh.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw error;
  }
}

function badArgument(message: string) {
  return vhdxError('vhdx-bad-argument', message);
}
