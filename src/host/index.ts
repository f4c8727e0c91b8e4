/** host/: facts about the machine Visor runs on (CPUs, memory, accelerator, NICs, privileges). */
export { getHostInfo } from './host-info.js';
export type { HostInfo, HostInfoOptions } from './host-info.js';
export { parseCpuinfo } from './cpu-info.js';
export type { CpuInfo } from './cpu-info.js';
export { parseMeminfo } from './mem-info.js';
export type { MemInfo } from './mem-info.js';
export { decideAccelerator, kvmBlocker } from './accelerator-decision.js';
export type { AcceleratorChoice, KvmFacts, KvmProbeResult } from './accelerator-decision.js';
export { runKvmProbe, kvmProbeFirmware, PROBE_EXIT_STATUS } from './kvm-probe.js';
export type { KvmProbeOptions } from './kvm-probe.js';
export { readBootId, readCachedAccelerator, writeCachedAccelerator } from './accelerator-cache.js';
export type { CachedAccelerator } from './accelerator-cache.js';
export { listNics, classifyNic } from './network-interfaces.js';
export type { NicInfo, NicKind, NicFacts } from './network-interfaces.js';
export { parseEffectiveCapabilities, hasCapability, CAP_NET_ADMIN } from './privileges.js';
export type { Privileges } from './privileges.js';
