export { imageInfo, createDisk, QEMU_FORMAT } from './qemu-img.js';
export type { ImageFacts } from './qemu-img.js';
export { copyDiskFile } from './copy-file.js';
