/**
 * Visor's VHD library (Microsoft Virtual Hard Disk, "vpc" to QEMU): open, validate, read, write,
 * create, convert and maintain VHD files, fixed, dynamic and differencing. Everything else in
 * this folder is internal. The API parallels the VHDX library's (storage/vhdx).
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
