/** The host's processors, from /proc/cpuinfo. */
export interface CpuInfo {
  /** Logical CPUs (one per "processor" entry). */
  count: number;
  /** "model name" of the first CPU, or "unknown". */
  model: string;
  vendor: string;
  /** Intel VT-x (vmx) or AMD-V (svm) visible: hardware virtualization for KVM. */
  vmx: boolean;
  svm: boolean;
}

/** Parses /proc/cpuinfo (x86 layout: blocks of "key\t: value" separated by blank lines). Pure. */
export function parseCpuinfo(text: string): CpuInfo {
  let count = 0;
  let model: string | undefined;
  let vendor: string | undefined;
  let flags: Set<string> | undefined;
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (key === 'processor') count += 1;
    else if (key === 'model name') model ??= value;
    else if (key === 'vendor_id') vendor ??= value;
    else if (key === 'flags') flags ??= new Set(value.split(/\s+/));
  }
  return {
    count,
    model: model ?? 'unknown',
    vendor: vendor ?? 'unknown',
    vmx: flags?.has('vmx') ?? false,
    svm: flags?.has('svm') ?? false,
  };
}
