import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideMoveRecovery } from './move-recovery.js';
import type { MoveObservation, MovePhase, MoveRecord, MoveRecordDisk } from './move-recovery.js';

function disk(id: string, phase: MovePhase): MoveRecordDisk {
  return {
    diskId: id,
    oldPath: `/old/${id}.qcow2`,
    oldFormat: 'qcow2',
    newPath: `/new/${id}.qcow2`,
    newFormat: 'qcow2',
    targetNode: `mv-${id}`,
    sourceNode: `disk-${id}`,
    jobId: `mv-${id}`,
    where: 'qemu',
    phase,
  };
}

function record(...disks: MoveRecordDisk[]): MoveRecord {
  return { moveId: 'm1', guestWasRunning: true, disks };
}

const gone: MoveObservation = { vmRunning: false, serving: null, jobPresent: false };

describe('decideMoveRecovery', () => {
  it('copying, VM gone: keeps the source and deletes the partial target', () => {
    const r = decideMoveRecovery(record(disk('a', 'copying')), () => gone);
    assert.deepEqual(r, { disks: [{ diskId: 'a', keep: 'old', steps: ['delete-target-file'] }], resumeGuest: false });
  });

  it('copying, VM running with its mirror: cancels the job, drops the target nodes and file', () => {
    const r = decideMoveRecovery(record(disk('a', 'copying')), () => ({ vmRunning: true, serving: 'old', jobPresent: true }));
    assert.deepEqual(r.disks[0], { diskId: 'a', keep: 'old', steps: ['cancel-job', 'delete-target-nodes', 'delete-target-file'] });
    assert.equal(r.resumeGuest, false, 'the guest was never paused while copying');
  });

  it('pivoting, VM gone: keeps the source, complete because the guest was paused', () => {
    const r = decideMoveRecovery(record(disk('a', 'pivoting'), disk('b', 'pivoting')), () => gone);
    assert.deepEqual(r.disks.map((d) => d.keep), ['old', 'old']);
    assert.deepEqual(r.disks[0]?.steps, ['delete-target-file']);
    assert.equal(r.resumeGuest, false);
  });

  it('pivoting, VM running on the target: keeps the target, deletes the source nodes and files, resumes the guest', () => {
    const r = decideMoveRecovery(record(disk('a', 'pivoting')), () => ({ vmRunning: true, serving: 'new', jobPresent: false }));
    assert.deepEqual(r, { disks: [{ diskId: 'a', keep: 'new', steps: ['delete-source-nodes', 'delete-source-file'] }], resumeGuest: true });
  });

  it('pivoting, VM running still on the source: rolls back and resumes', () => {
    const r = decideMoveRecovery(record(disk('a', 'pivoting')), () => ({ vmRunning: true, serving: 'old', jobPresent: true }));
    assert.deepEqual(r.disks[0]?.steps, ['cancel-job', 'delete-target-nodes', 'delete-target-file']);
    assert.equal(r.resumeGuest, true);
  });

  it('mixed pivot: a disk that pivoted keeps its target, the other its source; no source file is deleted', () => {
    const r = decideMoveRecovery(record(disk('a', 'pivoted'), disk('b', 'pivoting')), (d) =>
      d.diskId === 'a' ? { vmRunning: true, serving: 'new', jobPresent: false } : { vmRunning: true, serving: 'old', jobPresent: true },
    );
    assert.deepEqual(r.disks, [
      { diskId: 'a', keep: 'new', steps: ['delete-source-nodes'] },
      { diskId: 'b', keep: 'old', steps: ['cancel-job', 'delete-target-nodes', 'delete-target-file'] },
    ]);
  });

  it('pivoted, VM gone: the target is the disk; the source file goes', () => {
    const r = decideMoveRecovery(record(disk('a', 'pivoted')), () => gone);
    assert.deepEqual(r.disks[0], { diskId: 'a', keep: 'new', steps: ['delete-source-file'] });
  });

  it('a guest that was paused before the move is not resumed', () => {
    const r = decideMoveRecovery({ ...record(disk('a', 'pivoted')), guestWasRunning: false }, () => ({ vmRunning: true, serving: 'new', jobPresent: false }));
    assert.equal(r.resumeGuest, false);
  });
});
