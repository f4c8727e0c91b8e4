export { writeFileAtomic, fsyncDir } from './atomic-write.js';
export { LOCATION_FILE, VmStore, folderAt, makeFolderLayout, pathExists, vmFolder } from './vm-store.js';
export type { VmFolder, BrokenVm } from './vm-store.js';
