import type { VmConfig } from '../../core/index.js';

/** Debian's OVMF build (package ovmf): 4 MiB flash images. */
export const OVMF_DIR = '/usr/share/OVMF';

/** The UEFI firmware a generation-2 VM boots: read-only code and the template of its variables. */
export interface UefiFirmware {
  code: string;
  varsTemplate: string;
  /** Secure Boot needs SMM and a secure pflash. */
  secureBoot: boolean;
}

/**
 * Picks the OVMF images for a VM. Secure Boot uses the SMM-enforcing code image and the variable
 * template with Microsoft's keys enrolled (Debian ships no OVMF_VARS_4M.secboot.fd; the .ms
 * template has Secure Boot on). Returns null for generation 1 (SeaBIOS, built in).
 */
export function selectFirmware(config: Pick<VmConfig, 'generation' | 'secureBoot'>, dir = OVMF_DIR): UefiFirmware | null {
  if (config.generation !== 2) return null;
  if (config.secureBoot) {
    return { code: `${dir}/OVMF_CODE_4M.secboot.fd`, varsTemplate: `${dir}/OVMF_VARS_4M.ms.fd`, secureBoot: true };
  }
  return { code: `${dir}/OVMF_CODE_4M.fd`, varsTemplate: `${dir}/OVMF_VARS_4M.fd`, secureBoot: false };
}
