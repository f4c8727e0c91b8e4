/**
 * The fixed layout of a VHDX file's header section (MS-VHDX 2.1, 2.2): five 64 KiB structures in
 * the first 1 MiB, and the 1 MiB alignment every region, the log and every block obey.
 */
export const KiB = 1024;
export const MiB = 1024 * KiB;

/** The header section: file identifier, two headers, two region tables; 1 MiB in all. */
export const HEADER_SECTION_SIZE = 1 * MiB;
export const FILE_IDENTIFIER_OFFSET = 0;
export const HEADER_1_OFFSET = 64 * KiB;
export const HEADER_2_OFFSET = 128 * KiB;
export const REGION_TABLE_1_OFFSET = 192 * KiB;
export const REGION_TABLE_2_OFFSET = 256 * KiB;

/** Regions, the log and blocks sit at multiples of 1 MiB (2.2.3.2, 2.3, 2.5.1). */
export const ALIGNMENT = 1 * MiB;

/** Log sectors, descriptor offsets and zero lengths are 4 KiB units (2.3.1). */
export const LOG_SECTOR_SIZE = 4 * KiB;

/** The largest virtual disk the format allows: 64 TiB (2.6.2.2). */
export const MAX_VIRTUAL_DISK_SIZE = 64 * 1024 * 1024 * MiB;

/** Sectors one sector bitmap block describes: 2^23 (2.4); a sector bitmap block is 1 MiB. */
export const SECTORS_PER_BITMAP_BLOCK = 2 ** 23;
export const SECTOR_BITMAP_BLOCK_SIZE = 1 * MiB;

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
