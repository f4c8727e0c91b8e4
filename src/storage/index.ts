export { imageInfo, createDisk, createDifferencingChild, QEMU_FORMAT } from './qemu-img.js';
export type { ImageFacts } from './qemu-img.js';
export { copyDiskFile } from './copy-file.js';
export {
  detectFormat,
  inspectDisk,
  newDisk,
  convertDisk,
  resizeDisk,
  compactDisk,
  mergeDisk,
  prepareNewDisk,
  prepareConvertDisk,
  prepareResizeDisk,
  prepareCompactDisk,
  prepareMergeDisk,
} from './disk-operations.js';
export type { DiskWork } from './disk-operations.js';
export { validatePassthroughDevice, PASSTHROUGH_ERROR_CODES } from './passthrough.js';
