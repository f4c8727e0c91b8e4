export type { VmService, VmEvents } from './vm-service.js';
export { createVmService } from './create-vm-service.js';
export type { VmServiceOptions } from './create-vm-service.js';
export { buildVmConfig, applyVmUpdate, maxProcessors, maxStartupMemory } from './build-config.js';
export type { HostLimits } from './build-config.js';
