export { writeFileAtomic, fsyncDir } from './atomic-write.js';
export { VmStore, vmFolder } from './vm-store.js';
export type { VmFolder, BrokenVm } from './vm-store.js';
