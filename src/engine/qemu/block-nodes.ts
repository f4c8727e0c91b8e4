import { createHash } from 'node:crypto';
import type { DiskAttachment, DiskFormat } from '../../core/index.js';

/**
 * Block node names for a VM's disks. QEMU wants node names of at most 31 characters starting
 * with a letter; disk ids are free text (often a UUID), so an id that does not fit is hashed.
 * The same id always gives the same name, across launches and config edits.
 */
const NODE_NAME_MAX = 31;
const PLAIN_ID = /^[A-Za-z][A-Za-z0-9_-]*$/;

export function diskNodeName(diskId: string): string {
  const plain = `disk-${diskId}`;
  if (PLAIN_ID.test(diskId) && plain.length + '-file'.length <= NODE_NAME_MAX) return plain;
  return `disk-${createHash('sha256').update(diskId).digest('hex').slice(0, 16)}`;
}

/** The protocol (file) node under a disk's format node. */
export function fileNodeName(nodeName: string): string {
  return `${nodeName}-file`;
}

/** The DVD drive's device id, for blockdev-change-medium / eject. */
export const DVD_DEVICE_ID = 'dvd0';
export const DVD_NODE_NAME = 'dvd0-media';

/** Formats QEMU cannot migrate with; the VM's storage daemon serves them (QEMU-FACTS.md). */
export function needsStorageDaemon(format: DiskFormat): boolean {
  return format === 'vhdx' || format === 'vhd';
}

/** QEMU's driver for each format. VHD is `vpc`, always explicit: a fixed VHD probes as raw. */
export function formatDriver(format: DiskFormat): string {
  return format === 'vhd' ? 'vpc' : format;
}

export function storageDaemonDisks(disks: readonly DiskAttachment[]): DiskAttachment[] {
  return disks.filter((disk) => needsStorageDaemon(disk.format));
}
