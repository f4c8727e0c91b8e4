/**
 * Visor's VHD library (Microsoft Virtual Hard Disk, "vpc" to QEMU). Everything else in this
 * folder is internal. Its API parallels the VHDX library's (storage/vhdx).
 *
 *   const disk = await VhdFile.open(path);                  // read-only; validates everything
 *   disk.info                                                // type, sizes, CHS, ids, locators
 *   await disk.read(position, length)                        // any offset; through the chain
 *   await disk.close();
 *
 *   const rw = await VhdFile.open(path, { readOnly: false });
 *   await rw.write(data, position); await rw.flush();        // blocks appended, footer moved
 *
 *   await createVhd(path, { type: 'dynamic', size, blockSize }); // exact size + spec CHS
 *   await createVhd(child, { type: 'differencing', parentPath });
 *   await convertToRaw(path, rawPath, ctx);                  // sparse, progress, cancellable
 *   await convertFromRaw(rawPath, path, ctx, { type });      // zero blocks stay unallocated
 *   await flattenChain(topPath, newPath, ctx);               // chain → standalone dynamic VHD
 *   await mergeIntoParent(childPath, ctx);                   // child's sectors into its parent
 *   await resizeVhd(path, newSize, ctx);                     // grow only
 *   await compactVhd(path, ctx);                             // drop blocks that add nothing
 *
 * Every failure is a VisorError whose code says what is wrong (VhdErrorCode) and whose message
 * names the file and quotes the value. A read-only open never writes. QEMU opens a differencing
 * VHD silently without its parent: check `info.diskType` before handing a file to QEMU.
 */
export { VhdFile, MAX_CHAIN_DEPTH } from './vhd-file.js';
export type { VhdInfo, VhdOpenOptions } from './vhd-file.js';
export type { VhdDiskType, ChsGeometry } from './footer.js';
export { chsGeometry } from './footer.js';
export { createVhd, DEFAULT_BLOCK_SIZE, DEFAULT_CREATOR } from './create.js';
export type { CreateVhdOptions } from './create.js';
export type { VhdErrorCode } from './errors.js';
export type { ParentLocator } from './parent-locator.js';
export { convertToRaw, convertFromRaw, flattenChain } from './convert.js';
export type { ConvertOptions, ConvertFromRawOptions, FlattenOptions } from './convert.js';
export { mergeIntoParent } from './merge.js';
export type { MergeOptions } from './merge.js';
export { compactVhd } from './compact.js';
export type { CompactResult } from './compact.js';
export { resizeVhd } from './resize.js';
