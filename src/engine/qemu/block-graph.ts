import { VisorError } from '../../core/index.js';
import type { WaitOptions } from './deadline.js';
import { FIRMWARE_VARS_MOVE_ID, FIRMWARE_VARS_QDEV, diskNodeName, fileNodeName } from './block-nodes.js';
import type { QmpClient } from './qmp-client.js';
import type { BlockInfo, NamedBlockNode } from './qmp-types.js';

/**
 * Reading a running VM's block graph back: which node serves a disk now. QEMU cannot rename a
 * node, so after a storage move a disk's node is the move's target node (moveTargetNodeName),
 * not diskNodeName(id); every later operation asks here instead of assuming.
 */

export const BLOCK_ERROR_CODES = {
  hotplugUnsupported: 'disk-hotplug-unsupported',
  diskNotAttached: 'disk-not-attached',
  diskAlreadyAttached: 'disk-already-attached',
  noHotplugPort: 'no-hotplug-port',
  moveFailed: 'storage-move-failed',
  dvdMissing: 'dvd-drive-missing',
} as const;

/** The NBD export id of a disk served by the storage daemon (storage-daemon-args.ts). */
export function exportId(diskId: string): string {
  return `export-${diskNodeName(diskId)}`;
}

/** The qdev path QEMU reports for a device id: "disk-a", "/machine/peripheral/disk-a[/virtio-backend]". */
export function isDeviceOf(qdev: string | undefined, deviceId: string): boolean {
  if (qdev === undefined) return false;
  return qdev === deviceId || qdev === `/machine/peripheral/${deviceId}` || qdev.startsWith(`/machine/peripheral/${deviceId}/`);
}

/** The BlockBackend of a front end (disk or DVD) by its device id; null when there is none. */
export async function findBackend(qmp: QmpClient, deviceId: string, options?: WaitOptions): Promise<BlockInfo | null> {
  const blocks = await qmp.queryBlock(options);
  return blocks.find((b) => isDeviceOf(b.qdev, deviceId)) ?? null;
}

/** Where a disk's data is served from now. */
export interface DiskServing {
  /** The format node serving the disk, in QEMU or in the storage daemon. */
  nodeName: string;
  /** Whose QMP owns that node. */
  where: 'qemu' | 'storage-daemon';
  /** The file (or URL) of that node's image. */
  filename: string;
  /** The NBD node inside QEMU for a daemon-served disk; null for a disk QEMU opens itself. */
  qemuNbdNode: string | null;
}

/**
 * Resolves a disk's current node: QEMU's front end `diskNodeName(id)` → its BlockBackend's
 * node; when that node is an NBD client of the storage daemon, follows the daemon's export.
 * FIRMWARE_VARS_MOVE_ID names the UEFI variable store's pflash.
 */
export async function diskServing(qmp: QmpClient, storage: QmpClient | null, diskId: string, options?: WaitOptions): Promise<DiskServing> {
  const deviceId = diskId === FIRMWARE_VARS_MOVE_ID ? FIRMWARE_VARS_QDEV : diskNodeName(diskId);
  const backend = await findBackend(qmp, deviceId, options);
  if (!backend?.inserted) {
    throw new VisorError('not-found', BLOCK_ERROR_CODES.diskNotAttached, `Disk "${diskId}" is not attached to the running VM.`, { field: 'diskId' });
  }
  const node = backend.inserted['node-name'];
  if (backend.inserted.drv !== 'nbd' || storage === null) {
    return { nodeName: node, where: 'qemu', filename: backend.inserted.file, qemuNbdNode: null };
  }
  const exports = await storage.queryBlockExports(options);
  const exported = exports.find((e) => e.id === exportId(diskId));
  if (!exported) return { nodeName: node, where: 'qemu', filename: backend.inserted.file, qemuNbdNode: null };
  const nodes = await storage.queryNamedBlockNodes(options);
  const daemonNode = nodes.find((n) => n['node-name'] === exported['node-name']);
  return { nodeName: exported['node-name'], where: 'storage-daemon', filename: daemonNode?.file ?? '', qemuNbdNode: node };
}

export async function namedNode(qmp: QmpClient, nodeName: string, options?: WaitOptions): Promise<NamedBlockNode | null> {
  return (await qmp.queryNamedBlockNodes(options)).find((n) => n['node-name'] === nodeName) ?? null;
}

/**
 * Deletes a format node and then its protocol node (named fileNodeName(node), which we always
 * add separately). A node already gone is not an error.
 */
export async function deleteDiskNodes(qmp: QmpClient, nodeName: string, options?: WaitOptions): Promise<void> {
  for (const name of [nodeName, fileNodeName(nodeName)]) {
    try {
      await qmp.blockdevDel(name, options);
    } catch (error) {
      if (!(error instanceof VisorError && /Failed to find node|Cannot find node/.test(error.message))) throw error;
    }
  }
}
