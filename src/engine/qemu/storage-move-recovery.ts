import { rm } from 'node:fs/promises';
import { VisorError } from '../../core/index.js';
import { deleteDiskNodes, diskServing } from './block-graph.js';
import { MirrorJob } from './block-jobs.js';
import type { WaitOptions } from './deadline.js';
import { isRemoteLocation } from './disk-location.js';
import { decideMoveRecovery } from './move-recovery.js';
import type { MoveObservation, MoveRecord, MoveRecordDisk, MoveRecovery } from './move-recovery.js';
import type { MoveTarget } from './storage-move.js';

/**
 * Finishes or rolls back a storage move a crash interrupted, from its record: observes the VM
 * (when it runs: which file each disk serves, whether its mirror is still there), takes
 * decideMoveRecovery()'s decision and carries it out. `vm` null: the VM is not running.
 * Returns the decision: the caller points each disk's config at `keep` and drops the record.
 */
export async function recoverStorageMove(vm: MoveTarget | null, record: MoveRecord, options: WaitOptions = {}): Promise<MoveRecovery> {
  const observed = new Map<string, MoveObservation>();
  for (const disk of record.disks) observed.set(disk.diskId, vm ? await observe(vm, disk, options) : { vmRunning: false, serving: null, jobPresent: false });
  const decision = decideMoveRecovery(record, (disk) => observed.get(disk.diskId) ?? { vmRunning: false, serving: null, jobPresent: false });
  for (const step of decision.disks) {
    const disk = record.disks.find((d) => d.diskId === step.diskId);
    if (!disk) continue;
    const qmp = vm ? (disk.where === 'storage-daemon' ? vm.storage?.qmp : vm.qmp) : undefined;
    for (const action of step.steps) {
      switch (action) {
        case 'cancel-job': {
          if (!qmp) break;
          using job = new MirrorJob(qmp, disk.jobId);
          await job.cancel({ ...options, timeoutMs: options.timeoutMs ?? 30_000 });
          break;
        }
        case 'delete-target-nodes':
          if (qmp) await deleteDiskNodes(qmp, disk.targetNode, options);
          break;
        case 'delete-source-nodes':
          if (qmp) await deleteDiskNodes(qmp, disk.sourceNode, options);
          break;
        case 'delete-target-file':
          if (!isRemoteLocation(disk.newPath)) await rm(disk.newPath, { force: true });
          break;
        case 'delete-source-file':
          if (!isRemoteLocation(disk.oldPath)) await rm(disk.oldPath, { force: true });
          break;
      }
    }
  }
  if (decision.resumeGuest && vm) {
    const status = await vm.qmp.queryStatus(options);
    if (status.status === 'paused') await vm.qmp.cont(options);
  }
  return decision;
}

async function observe(vm: MoveTarget, disk: MoveRecordDisk, options: WaitOptions): Promise<MoveObservation> {
  const qmp = disk.where === 'storage-daemon' ? vm.storage?.qmp : vm.qmp;
  if (!qmp) throw new VisorError('failed', 'storage-daemon-missing', `Disk "${disk.diskId}" was moved in the storage daemon, which is not running.`);
  let serving: 'old' | 'new' | null = null;
  try {
    const now = await diskServing(vm.qmp, vm.storage?.qmp ?? null, disk.diskId, options);
    serving = now.nodeName === disk.targetNode ? 'new' : 'old';
  } catch {
    serving = null; // not attached any more
  }
  const jobs = await qmp.queryBlockJobs(options);
  return { vmRunning: true, serving, jobPresent: jobs.some((j) => j.device === disk.jobId) };
}
