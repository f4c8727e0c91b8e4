import type { DiskFormat } from '../../core/index.js';

/**
 * A live storage move as the VM service persists it (jobs/<id>.json), written through
 * moveStorage()'s `onRecord` before each step that changes where the VM runs from:
 * - `copying`: the target may exist and is being filled; the VM runs from the source.
 * - `pivoting`: the guest is paused and the mirrors were told to pivot. Until `pivoted` is
 *   recorded the guest stays paused, so it has written nothing to any target yet: the source
 *   is complete, whatever happened to the pivot.
 * - `pivoted`: the VM runs from the target; the caller has put the new path in vm.json with
 *   this record. The source's nodes may still be open; its file is the caller's to delete once
 *   every disk of the move is `pivoted`.
 */
export type MovePhase = 'copying' | 'pivoting' | 'pivoted';

export interface MoveRecordDisk {
  diskId: string;
  oldPath: string;
  oldFormat: DiskFormat;
  newPath: string;
  newFormat: DiskFormat;
  /** The node names of the move (target) and of the source at the start. */
  targetNode: string;
  sourceNode: string;
  /** The mirror job's id (= targetNode). */
  jobId: string;
  /** Whose block graph runs the mirror. */
  where: 'qemu' | 'storage-daemon';
  phase: MovePhase;
}

export interface MoveRecord {
  moveId: string;
  /** The guest ran when the pivot paused it: resume it after a recovery that finds it paused. */
  guestWasRunning: boolean;
  disks: MoveRecordDisk[];
}

/** What recovery found about one disk of a move, at daemon start. */
export interface MoveObservation {
  /** Is the VM's QEMU (and its storage daemon) still running? */
  vmRunning: boolean;
  /**
   * When running: which file the disk's node serves now ('old' / 'new'), from query-block or
   * the storage daemon's export; null when the VM is not running or the disk is not attached.
   */
  serving: 'old' | 'new' | null;
  /** When running: is the move's mirror job still there (query-block-jobs)? */
  jobPresent: boolean;
}

/** Steps, in order, that bring one disk to a consistent place. */
export type RecoveryStep =
  | 'cancel-job' //           block-job-cancel the mirror, wait until it is gone
  | 'delete-target-nodes' //  blockdev-del the target's nodes (running VM)
  | 'delete-target-file' //   remove newPath (it holds nothing the guest needs)
  | 'delete-source-nodes' //  blockdev-del the source's nodes (running VM)
  | 'delete-source-file'; //  remove oldPath, once every disk of the move keeps 'new'

export interface DiskRecovery {
  diskId: string;
  /** Where the disk's config must point: the old path/format or the new one. */
  keep: 'old' | 'new';
  steps: RecoveryStep[];
}

export interface MoveRecovery {
  disks: DiskRecovery[];
  /** Resume the guest (QMP cont) if it is paused: the pivot paused it and died before resuming. */
  resumeGuest: boolean;
}

/**
 * The recovery decision for an interrupted move. Pure. One rule: the VM keeps the target only
 * where the move had recorded `pivoted`, or where the running VM is observed serving the
 * target; everywhere else it keeps the source, which is complete because the guest stays
 * paused from the start of the pivot until `pivoted` is recorded. Source files are deleted only
 * when every disk keeps its target (the move as a whole succeeded); a disk that keeps its
 * source loses its partial target.
 */
export function decideMoveRecovery(record: MoveRecord, observe: (disk: MoveRecordDisk) => MoveObservation): MoveRecovery {
  const decided = record.disks.map((disk) => {
    const seen = observe(disk);
    const keep: 'old' | 'new' = disk.phase === 'pivoted' || (seen.vmRunning && seen.serving === 'new') ? 'new' : 'old';
    return { disk, seen, keep };
  });
  const allNew = decided.every((d) => d.keep === 'new');
  const disks = decided.map(({ disk, seen, keep }): DiskRecovery => {
    const steps: RecoveryStep[] = [];
    if (keep === 'old') {
      if (seen.vmRunning && seen.jobPresent) steps.push('cancel-job');
      if (seen.vmRunning) steps.push('delete-target-nodes');
      steps.push('delete-target-file');
    } else {
      if (seen.vmRunning) steps.push('delete-source-nodes');
      if (allNew) steps.push('delete-source-file');
    }
    return { diskId: disk.diskId, keep, steps };
  });
  const paused = record.disks.some((d) => d.phase === 'pivoting' || d.phase === 'pivoted');
  return { disks, resumeGuest: record.guestWasRunning && paused && decided.some((d) => d.seen.vmRunning) };
}
