/** Sizes and limits shared by the VHD structures (Virtual Hard Disk Image Format Specification). */

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Every VHD structure and block is addressed in 512-byte sectors. */
export const SECTOR_SIZE = 512;

/**
 * The largest virtual size we accept: 2040 GiB, the VHD limit Hyper-V documents (0xFF000000
 * sectors, QEMU's VHD_MAX_SECTORS as well).
 */
export const MAX_VIRTUAL_SIZE = 0xff000000 * SECTOR_SIZE;

export function alignUp(value: number, to: number): number {
  return Math.ceil(value / to) * to;
}

/** Seconds between the Unix epoch and the VHD epoch, 2000-01-01T00:00:00Z. */
export const VHD_EPOCH_OFFSET_S = 946_684_800;

export function vhdTimestamp(date: Date = new Date()): number {
  return Math.max(0, Math.floor(date.getTime() / 1000) - VHD_EPOCH_OFFSET_S) >>> 0;
}
