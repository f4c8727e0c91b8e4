/**
 * Visor's VHDX library: MS-VHDX v1 in TypeScript. Everything else in this folder is internal.
 *
 *   const disk = await VhdxFile.open(path);                 // read-only; validates everything
 *   disk.info                                                // type, sizes, IDs, parent locator
 *   await disk.read(position, length)                        // any offset; through the chain
 *   await disk.close();
 *
 *   const rw = await VhdxFile.open(path, { readOnly: false }); // replays a pending log on disk
 *   await rw.write(data, position); await rw.flush();        // BAT/bitmap changes go via the log
 *
 *   await createVhdx(path, { type: 'dynamic', size, blockSize, logicalSectorSize });
 *   await createVhdx(child, { type: 'differencing', parentPath });
 *   await convertToRaw(path, rawPath, ctx);                  // sparse, progress, cancellable
 *   await flattenChain(topPath, newPath, ctx);               // chain → standalone dynamic VHDX
 *   await mergeIntoParent(childPath, ctx);                   // child's data into its parent
 *   await resizeVhdx(path, newSize, ctx);                    // grow (moves the BAT if needed); shrink over zeros
 *   await compactVhdx(path, ctx);                            // give back all-zero blocks
 *
 * Every failure is a VisorError whose code says what is wrong (VhdxErrorCode) and whose message
 * names the file and quotes the value. A read-only open never writes: a pending log is replayed
 * in memory (or refused with `readOnlyReplay: 'refuse'`).
 */
export { VhdxFile, MAX_CHAIN_DEPTH } from './vhdx-file.js';
export type { VhdxDiskType, VhdxInfo, VhdxOpenOptions, VhdxTestHooks, BlockMapping } from './vhdx-file.js';
export { createVhdx, DEFAULT_BLOCK_SIZE, DEFAULT_DIFFERENCING_BLOCK_SIZE } from './create.js';
export type { CreateVhdxOptions } from './create.js';
export { convertToRaw, flattenChain } from './convert.js';
export type { ConvertOptions, FlattenOptions } from './convert.js';
export { mergeIntoParent, resizeVhdx, compactVhdx } from './maintenance.js';
export type { CompactResult } from './maintenance.js';
export type { VhdxErrorCode } from './errors.js';
export type { ParentLocator } from './parent-locator.js';
