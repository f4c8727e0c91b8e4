export type { VmService, VmEvents } from './vm-service.js';
