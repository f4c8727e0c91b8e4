import { createHash } from 'node:crypto';
import type { DiskAttachment, DiskFormat } from '../../core/index.js';
import { compact, flattenOptions, parseDiskLocation, protocolOptions } from './disk-location.js';

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

/**
 * A generation-2 VM's UEFI variable store: a writable pflash backend QEMU keeps open, which a
 * whole-folder storage move mirrors like a disk (a "disk" of this id in the move and its record).
 */
export const FIRMWARE_VARS_MOVE_ID = 'firmware-vars';
export const FIRMWARE_VARS_NODE = 'firmware-vars';
/** The qdev path of the variable store's pflash device (q35 with `pflash1=`), 10.0.2. */
export const FIRMWARE_VARS_QDEV = '/machine/system.flash1';

/** The DVD drive's device id, for blockdev-change-medium / eject. */
export const DVD_DEVICE_ID = 'dvd0';
export const DVD_NODE_NAME = 'dvd0-media';

/**
 * Disks QEMU cannot migrate with — VHDX/VHD, or a differencing child whose parent is one —
 * are served by the VM's storage daemon (QEMU-FACTS.md: a vhdx/vpc node blocks migrate).
 */
export function needsStorageDaemon(disk: Pick<DiskAttachment, 'format' | 'backing'>): boolean {
  return isMicrosoftFormat(disk.format) || (disk.backing !== undefined && isMicrosoftFormat(disk.backing.format));
}

function isMicrosoftFormat(format: DiskFormat): boolean {
  return format === 'vhdx' || format === 'vhd';
}

/** QEMU's driver for each format. VHD is `vpc`, always explicit: a fixed VHD probes as raw. */
export function formatDriver(format: DiskFormat): string {
  return format === 'vhd' ? 'vpc' : format;
}

export function storageDaemonDisks(disks: readonly DiskAttachment[]): DiskAttachment[] {
  return disks.filter((disk) => needsStorageDaemon(disk));
}

/**
 * The two blockdev-add objects of a disk: its protocol node (file, host_device, nfs, iscsi,
 * nbd, ssh — from the path or URL) and its format node on top. The argv builders flatten them;
 * hot-plug and storage moves send them over QMP. `nodeName` is the format node's name.
 */
export function diskNodes(
  disk: Pick<DiskAttachment, 'path' | 'format' | 'readOnly'>,
  nodeName: string,
  options: { blockDevices?: ReadonlySet<string>; field?: string } = {},
): { protocol: Record<string, unknown>; format: Record<string, unknown> } {
  const readOnly = disk.readOnly ? true : undefined;
  const { driver, ...rest } = protocolOptions(parseDiskLocation(disk.path, options));
  return {
    protocol: compact({ driver, 'node-name': fileNodeName(nodeName), ...rest, 'read-only': readOnly }),
    format: compact({ driver: formatDriver(disk.format), 'node-name': nodeName, file: fileNodeName(nodeName), 'read-only': readOnly }),
  };
}

/** A node's options in -blockdev's dotted key=value form. */
export function blockdevArg(node: Record<string, unknown>): Array<[string, string | number | boolean]> {
  return flattenOptions(node);
}

/**
 * Name of a storage move's target node for a disk: the source keeps its name until it is
 * deleted, and QEMU cannot rename a node, so after a move the disk's node is this one. `token`
 * tells moves apart (a short base-36 string). At most 31 characters with "-file".
 */
export function moveTargetNodeName(diskId: string, token: string): string {
  const hash = createHash('sha256').update(diskId).digest('hex').slice(0, 14);
  return `mv-${hash}-${token.slice(0, 8)}`;
}
