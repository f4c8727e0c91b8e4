import { invalid } from './errors.js';

/**
 * MAC addresses. Visor allocates from QEMU's locally administered range 52:54:00:xx:xx:xx;
 * uniqueness on a host is the registry's job (see vms/), the choice of bytes is the caller's
 * randomness, so this module stays pure.
 */
export const VISOR_MAC_PREFIX = '52:54:00';
const MAC_PATTERN = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

export function normalizeMac(text: string, field = 'mac'): string {
  const mac = text.trim().toLowerCase().replace(/-/g, ':');
  if (!MAC_PATTERN.test(mac)) {
    throw invalid(field, `${field} "${text}" is not a MAC address.`, 'Write six hex bytes: 52:54:00:12:34:56.');
  }
  const first = Number.parseInt(mac.slice(0, 2), 16);
  if (first & 1) {
    throw invalid(field, `${field} "${text}" is a multicast address.`, 'The first byte must be even.');
  }
  return mac;
}

/** A MAC in Visor's range from three random bytes. */
export function macFromBytes(bytes: Uint8Array): string {
  const tail = Array.from(bytes.subarray(0, 3), (b) => b.toString(16).padStart(2, '0'));
  return [VISOR_MAC_PREFIX, ...tail].join(':');
}
