/** Linux capability numbers (linux/capability.h). */
export const CAP_NET_ADMIN = 12;
export const CAP_NET_RAW = 13;
export const CAP_SYS_ADMIN = 21;

export interface Privileges {
  uid: number;
  root: boolean;
  /** Needed for TAP devices, bridges, namespaces' links. */
  netAdmin: boolean;
}

/** The effective capability mask from /proc/self/status ("CapEff:\t000001fffeffffff"). Pure. */
export function parseEffectiveCapabilities(status: string): bigint {
  const match = /^CapEff:\s*([0-9a-f]+)$/im.exec(status);
  return match ? BigInt(`0x${match[1]}`) : 0n;
}

export function hasCapability(mask: bigint, capability: number): boolean {
  return (mask & (1n << BigInt(capability))) !== 0n;
}
