import { VisorError } from '../../core/index.js';
import type { DiskAttachment } from '../../core/index.js';
import { BLOCK_ERROR_CODES, deleteDiskNodes, diskServing, exportId } from './block-graph.js';
import { diskNodeName, diskNodes, needsStorageDaemon } from './block-nodes.js';
import { Deadline, type WaitOptions } from './deadline.js';
import { PCIE_HOTPLUG_PORTS, hotplugPortId } from './qemu-args.js';
import type { QmpClient } from './qmp-client.js';
import { Revert } from './revert.js';
import type { StorageDaemon } from './storage-daemon.js';

/** What hot-plug needs of a running VM (QemuInstance implements it). */
export interface HotplugTarget {
  readonly qmp: QmpClient;
  /** The VM's storage daemon; `start`: start one now if the VM has none (VHDX/VHD hot-add). */
  storageDaemon(options: WaitOptions & { start: boolean }): Promise<StorageDaemon | null>;
}

export interface HotplugOptions extends WaitOptions {
  /** The VM's generation: 2 (q35) hot-plugs PCI devices into its empty PCIe root ports. */
  generation: 1 | 2;
  /** Disk paths the caller knows to be block devices; default: paths under /dev/. */
  blockDevices?: ReadonlySet<string>;
}

const DEFAULT_HOTPLUG_TIMEOUT_MS = 30_000;
/** PCI unplug waits for the guest to agree (ACPI/PCIe hot-plug); SCSI unplug is immediate. */
const DEFAULT_UNPLUG_TIMEOUT_MS = 30_000;

/**
 * Attaches a disk to a running VM: SCSI (on virtio-scsi controller `controllerNumber`, which is
 * hot-added when the VM has none with that number) or virtio-blk. IDE cannot hot-plug and is
 * refused. qcow2/raw: QEMU opens the file (protocol + format node). VHDX/VHD: the VM's storage
 * daemon (started now if the VM has none) opens it and exports it over NBD; QEMU adds an NBD
 * node. Then `device_add`. Any failure removes what was added.
 */
export async function addDisk(target: HotplugTarget, disk: DiskAttachment, options: HotplugOptions): Promise<void> {
  if (disk.controller === 'ide') {
    throw new VisorError('invalid', BLOCK_ERROR_CODES.hotplugUnsupported, `Disk "${disk.id}" is on IDE, which cannot be attached while the VM runs.`, {
      field: 'controller',
      hint: 'Attach it to a SCSI controller, or turn the VM off first.',
    });
  }
  if (disk.controller === 'virtio' && disk.controllerNumber !== 0) {
    throw new VisorError('invalid', 'invalid-value', `Disk "${disk.id}" is on virtio controller ${disk.controllerNumber}; virtio disks use controller 0.`, {
      field: 'controllerNumber',
    });
  }
  const deadline = new Deadline(`Attaching disk "${disk.id}"`, options.timeoutMs ?? DEFAULT_HOTPLUG_TIMEOUT_MS, options.signal);
  const wait = { signal: deadline.signal };
  const { qmp } = target;
  const node = diskNodeName(disk.id);
  const revert = new Revert();
  try {
    const peripherals = await peripheralIds(qmp, wait);
    if (peripherals.has(node)) {
      throw new VisorError('conflict', BLOCK_ERROR_CODES.diskAlreadyAttached, `Disk "${disk.id}" is already attached to the running VM.`, { field: 'id' });
    }
    const device: Record<string, unknown> = { id: node, drive: node };
    if (disk.controller === 'scsi') {
      const controller = `scsi${disk.controllerNumber}`;
      if (!peripherals.has(controller)) {
        const bus = options.generation === 2 ? await freeHotplugPort(qmp, wait) : undefined;
        await qmp.deviceAdd({ driver: 'virtio-scsi-pci', id: controller, ...(bus ? { bus } : {}) }, wait);
        revert.add(() => unplug(qmp, controller, { timeoutMs: 5_000 }));
      }
      Object.assign(device, { driver: 'scsi-hd', bus: `${controller}.0`, channel: 0, 'scsi-id': 0, lun: disk.location });
    } else {
      const bus = options.generation === 2 ? await freeHotplugPort(qmp, wait) : undefined;
      Object.assign(device, { driver: 'virtio-blk-pci', ...(bus ? { bus } : {}) });
    }

    if (needsStorageDaemon(disk)) {
      const daemon = await target.storageDaemon({ ...wait, start: true });
      if (!daemon) throw new VisorError('bug', 'internal-error', 'The storage daemon did not start.');
      const storage = daemon.qmp;
      const nodes = diskNodes(disk, node, { blockDevices: options.blockDevices, field: 'path' });
      await storage.blockdevAdd(nodes.protocol, wait);
      revert.add(() => deleteDiskNodes(storage, node, { timeoutMs: 5_000 }));
      await storage.blockdevAdd(nodes.format, wait);
      await storage.blockExportAdd({ type: 'nbd', id: exportId(disk.id), 'node-name': node, name: disk.id, writable: !disk.readOnly }, wait);
      revert.add(() => storage.blockExportDel(exportId(disk.id), { timeoutMs: 5_000, force: true }));
      await qmp.blockdevAdd(
        { driver: 'nbd', 'node-name': node, server: { type: 'unix', path: daemon.files.storageNbdSocket }, export: disk.id, ...(disk.readOnly ? { 'read-only': true } : {}) },
        wait,
      );
      revert.add(() => qmp.blockdevDel(node, { timeoutMs: 5_000 }));
    } else {
      const nodes = diskNodes(disk, node, { blockDevices: options.blockDevices, field: 'path' });
      await qmp.blockdevAdd(nodes.protocol, wait);
      revert.add(() => deleteDiskNodes(qmp, node, { timeoutMs: 5_000 }));
      await qmp.blockdevAdd(nodes.format, wait);
    }
    await qmp.deviceAdd(device, wait);
    revert.release();
  } catch (error) {
    await revert.run();
    throw error;
  } finally {
    deadline.dispose();
  }
}

/**
 * Detaches a disk from a running VM: `device_del`, wait for DEVICE_DELETED (a virtio-blk disk
 * needs the guest's consent: PCI hot-unplug), then delete its nodes in QEMU and, for a disk the
 * storage daemon serves, its export and nodes there. Finds the nodes by asking (a moved disk's
 * node has the move's name). Once the device is gone there is no undo: a failure deleting a
 * node afterwards is reported, and the node is harmless.
 */
export async function removeDisk(target: HotplugTarget, diskId: string, options: WaitOptions = {}): Promise<void> {
  const deadline = new Deadline(`Detaching disk "${diskId}"`, options.timeoutMs ?? DEFAULT_UNPLUG_TIMEOUT_MS, options.signal);
  const wait = { signal: deadline.signal };
  try {
    const { qmp } = target;
    const storage = (await target.storageDaemon({ ...wait, start: false }))?.qmp ?? null;
    const serving = await diskServing(qmp, storage, diskId, wait);
    await unplug(qmp, diskNodeName(diskId), wait);
    if (serving.where === 'storage-daemon' && storage) {
      if (serving.qemuNbdNode) await qmp.blockdevDel(serving.qemuNbdNode, wait);
      const deleted = storage.waitForEvent('BLOCK_EXPORT_DELETED', (e) => e.data?.id === exportId(diskId), wait);
      deleted.catch(() => undefined);
      await storage.blockExportDel(exportId(diskId), wait);
      await deleted;
      await deleteDiskNodes(storage, serving.nodeName, wait);
    } else {
      await deleteDiskNodes(qmp, serving.nodeName, wait);
    }
  } finally {
    deadline.dispose();
  }
}

/** device_del and wait for its DEVICE_DELETED (subscribed before asking: no race). */
async function unplug(qmp: QmpClient, id: string, options: WaitOptions): Promise<void> {
  const deleted = qmp.waitForEvent('DEVICE_DELETED', (e) => e.data?.device === id, options);
  deleted.catch(() => undefined);
  await qmp.deviceDel(id, options);
  try {
    await deleted;
  } catch (error) {
    throw new VisorError('failed', BLOCK_ERROR_CODES.hotplugUnsupported, `The guest did not release device "${id}".`, {
      cause: error,
      hint: 'A virtio disk is removed only when the guest agrees (PCI hot-unplug); the guest may not support it or may be busy. Try again, or turn the VM off.',
    });
  }
}

/** Ids of the VM's user-created devices (/machine/peripheral). */
async function peripheralIds(qmp: QmpClient, options: WaitOptions): Promise<Set<string>> {
  const list = await qmp.execute<Array<{ name: string; type: string }>>('qom-list', { path: '/machine/peripheral' }, options);
  return new Set(list.filter((p) => p.type.startsWith('child<')).map((p) => p.name));
}

/** The first of generation 2's PCIe root ports (qemu-args.ts) with nothing plugged in. */
async function freeHotplugPort(qmp: QmpClient, options: WaitOptions): Promise<string> {
  // A port's bus is /machine/peripheral/<id>/<id>; a plugged device shows as a child[N] link.
  // (query-pci does not list a device under a port the guest has not enumerated.)
  for (let i = 0; i < PCIE_HOTPLUG_PORTS; i++) {
    const id = hotplugPortId(i);
    const props = await qmp.execute<Array<{ name: string }>>('qom-list', { path: `/machine/peripheral/${id}/${id}` }, options).catch(() => null);
    if (props && !props.some((p) => p.name.startsWith('child['))) return id;
  }
  throw new VisorError('conflict', BLOCK_ERROR_CODES.noHotplugPort, `All ${PCIE_HOTPLUG_PORTS} PCIe hot-plug ports of the VM are in use.`, {
    hint: 'Attach the disk to an existing SCSI controller, or turn the VM off to add it.',
  });
}
