import { VisorError } from '../../core/index.js';
import { BLOCK_ERROR_CODES, deleteDiskNodes, findBackend } from './block-graph.js';
import { DVD_DEVICE_ID, DVD_NODE_NAME, diskNodes } from './block-nodes.js';
import { Deadline, type WaitOptions } from './deadline.js';
import type { QmpClient } from './qmp-client.js';
import { Revert } from './revert.js';

const DEFAULT_DVD_TIMEOUT_MS = 10_000;

/**
 * Inserts an ISO into the running VM's DVD drive, or ejects it (`iso` null). Like Hyper-V, the
 * host wins over the guest: the tray opens with `force` even when the guest has locked it
 * (a mounted disc). Steps: open the tray → remove the medium → delete its nodes → add the new
 * ISO's nodes (file + raw, read-only, named DVD_NODE_NAME as at start) → insert → close. If the
 * new ISO cannot be opened, the previous one goes back in.
 */
export async function changeDvdMedium(qmp: QmpClient, iso: string | null, options: WaitOptions = {}): Promise<void> {
  const deadline = new Deadline(iso === null ? 'Ejecting the DVD' : `Inserting "${iso}" into the DVD drive`, options.timeoutMs ?? DEFAULT_DVD_TIMEOUT_MS, options.signal);
  const wait = { signal: deadline.signal };
  const revert = new Revert();
  try {
    const drive = await findBackend(qmp, DVD_DEVICE_ID, wait);
    if (!drive) {
      throw new VisorError('conflict', BLOCK_ERROR_CODES.dvdMissing, 'The running VM has no DVD drive.', {
        field: 'dvd',
        hint: 'Add a DVD drive while the VM is off.',
      });
    }
    const previous = drive.inserted ? { node: drive.inserted['node-name'], file: drive.inserted.file } : null;
    await qmp.blockdevOpenTray(DVD_DEVICE_ID, wait);
    revert.add(() => qmp.blockdevCloseTray(DVD_DEVICE_ID, { timeoutMs: 5_000 }));
    if (previous) {
      await qmp.blockdevRemoveMedium(DVD_DEVICE_ID, wait);
      await deleteDiskNodes(qmp, previous.node, wait);
      revert.add(() => insertIso(qmp, previous.file, { timeoutMs: 5_000 }));
    }
    if (iso !== null) await insertIso(qmp, iso, wait);
    await qmp.blockdevCloseTray(DVD_DEVICE_ID, wait);
    revert.release();
  } catch (error) {
    await revert.run();
    throw error;
  } finally {
    deadline.dispose();
  }
}

async function insertIso(qmp: QmpClient, iso: string, options: WaitOptions): Promise<void> {
  const nodes = diskNodes({ path: iso, format: 'raw', readOnly: true }, DVD_NODE_NAME, { field: 'dvd.iso' });
  await qmp.blockdevAdd(nodes.protocol, options);
  try {
    await qmp.blockdevAdd(nodes.format, options);
    await qmp.blockdevInsertMedium(DVD_DEVICE_ID, DVD_NODE_NAME, options);
  } catch (error) {
    await deleteDiskNodes(qmp, DVD_NODE_NAME, { timeoutMs: 5_000 }).catch(() => undefined);
    throw error;
  }
}
