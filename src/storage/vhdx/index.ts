/**
 * Visor's VHDX library (MS-VHDX v1): open, validate, read, write, create, convert and maintain
 * VHDX files, fixed, dynamic and differencing. Everything else in this folder is internal.
 */
export { VhdxFile, MAX_CHAIN_DEPTH } from './vhdx-file.js';
export type { VhdxDiskType, VhdxInfo, VhdxOpenOptions, VhdxTestHooks, BlockMapping } from './vhdx-file.js';
export { createVhdx, DEFAULT_BLOCK_SIZE, DEFAULT_DIFFERENCING_BLOCK_SIZE } from './create.js';
export type { CreateVhdxOptions } from './create.js';
export type { VhdxErrorCode } from './errors.js';
export type { ParentLocator } from './parent-locator.js';
export { convertToRaw, flattenChain } from './convert.js';
export type { ConvertOptions, FlattenOptions } from './convert.js';
export { mergeIntoParent, resizeVhdx, compactVhdx } from './maintenance.js';
export type { CompactResult } from './maintenance.js';
