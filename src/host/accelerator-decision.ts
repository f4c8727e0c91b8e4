import type { Accelerator } from '../engine/qemu/index.js';

/** What we know about KVM before running a probe guest. */
export interface KvmFacts {
  /** /dev/kvm: missing, present but not openable read-write, or opens. */
  device: 'missing' | 'no-access' | 'opens';
  /** Which kvm module is loaded: kvm_intel, kvm_amd, kvm_pvm (no hardware virtualization), none. */
  flavour: 'intel' | 'amd' | 'pvm' | 'none';
  /** The CPU flags show vmx or svm. */
  cpuHasVirtualization: boolean;
}

/** The result of running the probe guest under KVM. */
export interface KvmProbeResult {
  ok: boolean;
  /** What happened: "reached long mode in 41 ms", "timed out after 3000 ms", QEMU's error. */
  detail: string;
}

export interface AcceleratorChoice {
  kind: Accelerator;
  /** Why, in a sentence: "CPU has no vmx/svm flags; /dev/kvm is the PVM flavour". */
  reason: string;
}

/** Why KVM cannot be used without even trying, or null when a probe should decide. Pure. */
export function kvmBlocker(facts: KvmFacts): string | null {
  const reasons: string[] = [];
  if (!facts.cpuHasVirtualization) reasons.push('CPU has no vmx/svm flags');
  if (facts.flavour === 'pvm') reasons.push('/dev/kvm is the PVM flavour (kvm_pvm), which cannot run stock guest kernels');
  if (facts.device === 'missing') reasons.push('/dev/kvm does not exist');
  if (facts.device === 'no-access') reasons.push('/dev/kvm cannot be opened (add the user to the kvm group)');
  if (facts.device === 'opens' && facts.flavour === 'none') reasons.push('no kvm_intel or kvm_amd module is loaded');
  return reasons.length > 0 ? reasons.join('; ') : null;
}

/**
 * KVM only when /dev/kvm opens, the CPU shows vmx/svm, the module is kvm_intel/kvm_amd AND a
 * probe guest really ran under KVM; otherwise TCG (multi-threaded) with the reason. Pure.
 */
export function decideAccelerator(facts: KvmFacts, probe: KvmProbeResult | null): AcceleratorChoice {
  const blocker = kvmBlocker(facts);
  if (blocker) return { kind: 'tcg', reason: blocker };
  if (!probe) return { kind: 'tcg', reason: 'KVM was not probed' };
  if (!probe.ok) return { kind: 'tcg', reason: `a probe guest did not run under KVM: ${probe.detail}` };
  return { kind: 'kvm', reason: `KVM works: a probe guest ${probe.detail}` };
}
