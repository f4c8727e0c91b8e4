import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { VisorError, cancelled, quietContext } from '../../core/index.js';
import type { DiskAttachment, DiskFormat, OperationContext } from '../../core/index.js';
import { BLOCK_ERROR_CODES, deleteDiskNodes, diskServing, namedNode } from './block-graph.js';
import type { DiskServing } from './block-graph.js';
import { DIRECT_COPY_BUF_SIZE, MirrorJob, addCopyTarget, restoreTargetCache } from './block-jobs.js';
import { FIRMWARE_VARS_MOVE_ID, diskNodes, formatDriver, moveTargetNodeName } from './block-nodes.js';
import { Deadline } from './deadline.js';
import { isRemoteLocation } from './disk-location.js';
import type { MoveRecord, MoveRecordDisk } from './move-recovery.js';
import type { QmpClient } from './qmp-client.js';
import { Revert } from './revert.js';
import type { StorageDaemon } from './storage-daemon.js';

const run = promisify(execFile);

/** One disk to move: where to, and in which format (the same or another). */
export interface DiskMove {
  disk: DiskAttachment;
  path: string;
  format: DiskFormat;
}

export interface StorageMoveOptions {
  /**
   * Called (and awaited) before each step that changes where the VM runs from: persist the
   * record with the VM (jobs/<id>.json). When it is called with every disk `pivoted`, put the
   * new paths and formats in vm.json before returning: the guest resumes after it returns.
   */
  onRecord?: (record: MoveRecord) => Promise<void> | void;
  /**
   * `background` (default) copies beside the guest's writes; `write-blocking` makes each guest
   * write reach both sides before it completes (converges whatever the guest does, slower writes).
   */
  copyMode?: 'background' | 'write-blocking';
  /** Copy speed limit per disk, bytes per second (blockdev-mirror `speed`); default none. */
  speed?: number;
  /** A background mirror not ready after this switches to write-blocking. Default 60 s. */
  convergeAfterMs?: number;
  /** Budget of the whole move. Default 1 h. */
  timeoutMs?: number;
  blockDevices?: ReadonlySet<string>;
  /**
   * Also move the UEFI variable store (generation 2) to this file, pivoting with the disks:
   * it appears in the record and the result as the "disk" FIRMWARE_VARS_MOVE_ID.
   */
  firmwareVars?: string;
}

export interface MovedDisk {
  diskId: string;
  oldPath: string;
  oldFormat: DiskFormat;
  newPath: string;
  newFormat: DiskFormat;
  /** The disk's node now (the move's target node). */
  nodeName: string;
  where: 'qemu' | 'storage-daemon';
  /**
   * A VHDX/VHD target opened by QEMU itself (a qcow2/raw disk moved to vhdx/vhd) blocks
   * save-state until the VM restarts, when the storage daemon serves it (QEMU-FACTS.md).
   */
  blocksSaveState: boolean;
}

export interface StorageMoveResult {
  record: MoveRecord;
  disks: MovedDisk[];
  /** The old files (local paths) the caller deletes now that every disk has pivoted. */
  oldPaths: string[];
}

/** What a move needs of the running VM (QemuInstance implements it). */
export interface MoveTarget {
  readonly qmp: QmpClient;
  readonly storage: StorageDaemon | null;
}

const DEFAULT_MOVE_TIMEOUT_MS = 60 * 60_000;
const DEFAULT_CONVERGE_AFTER_MS = 60_000;
const PROGRESS_INTERVAL_MS = 250;
const PIVOT_TIMEOUT_MS = 60_000;

interface Leg {
  move: DiskMove;
  serving: DiskServing;
  qmp: QmpClient;
  targetNode: string;
  job: MirrorJob;
  record: MoveRecordDisk;
  /** The target's protocol node as a launch would open it, and whether the copy opened it O_DIRECT. */
  targetProtocol?: Record<string, unknown>;
  directCopy?: boolean;
}

/**
 * Moves running disks to new files (live storage move, Hyper-V's Move-VMStorage). For every
 * disk at once: create the target (qemu-img, same virtual size, no backing file) → add its
 * nodes where the disk is served (QEMU, or the storage daemon for VHDX/VHD) → `blockdev-mirror
 * sync=full` (a differencing disk becomes standalone) → wait until every mirror is ready,
 * reporting progress. Then the pivot: pause the guest → `job-complete` each → BLOCK_JOB_COMPLETED
 * → record `pivoted` → resume → delete the sources' nodes. An NBD export in the storage daemon
 * follows its node's pivot by itself (10.0.2).
 *
 * A failure or cancel before the pivot cancels every mirror, deletes the targets' nodes and
 * files, and leaves the VM on its sources, untouched. The sources' files are the caller's to
 * delete (result.oldPaths), after the new paths are persisted.
 */
export async function moveStorage(
  target: MoveTarget,
  diskMoves: readonly DiskMove[],
  ctx: OperationContext = quietContext(),
  options: StorageMoveOptions = {},
): Promise<StorageMoveResult> {
  const moves = options.firmwareVars === undefined ? diskMoves : [...diskMoves, await firmwareVarsMove(target.qmp, options.firmwareVars)];
  if (moves.length === 0) throw new VisorError('invalid', 'invalid-value', 'A storage move needs at least one disk.', { field: 'disks' });
  const deadline = new Deadline('Moving the VM\'s storage', options.timeoutMs ?? DEFAULT_MOVE_TIMEOUT_MS, ctx.signal);
  const wait = { signal: deadline.signal };
  const revert = new Revert();
  const legs: Leg[] = [];
  const record: MoveRecord = { moveId: randomBytes(6).toString('hex'), guestWasRunning: false, disks: [] };
  const persist = async (): Promise<void> => {
    await options.onRecord?.(structuredClone(record));
  };
  try {
    // 1. Where each disk is served now, its size, and its target's name.
    const token = randomBytes(3).toString('hex');
    for (const move of moves) {
      const storageQmp = target.storage?.qmp ?? null;
      const serving = await diskServing(target.qmp, storageQmp, move.disk.id, wait);
      const qmp = serving.where === 'storage-daemon' && storageQmp ? storageQmp : target.qmp;
      const targetNode = moveTargetNodeName(move.disk.id, token);
      const job = new MirrorJob(qmp, targetNode);
      revert.add(() => job.dispose());
      const diskRecord: MoveRecordDisk = {
        diskId: move.disk.id,
        oldPath: move.disk.path,
        oldFormat: move.disk.format,
        newPath: move.path,
        newFormat: move.format,
        targetNode,
        sourceNode: serving.nodeName,
        jobId: targetNode,
        where: serving.where,
        phase: 'copying',
      };
      legs.push({ move, serving, qmp, targetNode, job, record: diskRecord });
      record.disks.push(diskRecord);
      await refuseExisting(move);
    }
    await persist();

    // 2. Targets: files, nodes, mirrors.
    for (const leg of legs) {
      const node = await namedNode(leg.qmp, leg.serving.nodeName, wait);
      const size = node?.image?.['virtual-size'];
      if (size === undefined) throw new VisorError('bug', 'internal-error', `Disk "${leg.move.disk.id}": its node "${leg.serving.nodeName}" reports no size.`);
      revert.add(() => removeTarget(leg.move.path));
      await createImage(leg.move.path, leg.move.format, size, deadline.signal);
      const nodes = diskNodes({ path: leg.move.path, format: leg.move.format, readOnly: false }, leg.targetNode, { blockDevices: options.blockDevices, field: 'path' });
      revert.add(() => deleteDiskNodes(leg.qmp, leg.targetNode, { timeoutMs: 10_000 }));
      leg.targetProtocol = nodes.protocol;
      leg.directCopy = await addCopyTarget(leg.qmp, nodes.protocol, wait);
      await leg.qmp.blockdevAdd(nodes.format, wait);
      revert.add(() => leg.job.cancel({ timeoutMs: 30_000 }));
      await leg.job.start(leg.serving.nodeName, leg.targetNode, {
        ...wait,
        copyMode: options.copyMode,
        speed: options.speed,
        bufSize: leg.directCopy ? DIRECT_COPY_BUF_SIZE : undefined,
      });
    }

    // 3. Copy until every mirror is ready.
    ctx.progress(0, 'Copying disks');
    const started = performance.now();
    let switched = options.copyMode === 'write-blocking';
    // Progress by query every PROGRESS_INTERVAL_MS; a job's event (READY) wakes the loop at once.
    for (;;) {
      deadline.check();
      const signal = deadline.signal;
      const woken = Promise.race(legs.map((leg) => leg.job.nextEvent()));
      let offset = 0;
      let len = 0;
      let ready = true;
      for (const leg of legs) {
        const ended = leg.job.ended;
        if (ended) throw moveFailed(leg, ended.error ?? `the mirror was ${ended.kind} before it was ready`);
        const state = await leg.job.query({ signal });
        if (!state) throw moveFailed(leg, 'the mirror ended before it was ready');
        offset += state.offset;
        len += state.len;
        ready &&= state.ready;
      }
      ctx.progress(len === 0 ? 0.95 : Math.min(0.95, (0.95 * offset) / len), 'Copying disks');
      if (ready) break;
      if (!switched && performance.now() - started > (options.convergeAfterMs ?? DEFAULT_CONVERGE_AFTER_MS)) {
        switched = true;
        for (const leg of legs) await leg.job.writeBlocking({ signal });
      }
      await Promise.race([sleep(PROGRESS_INTERVAL_MS, undefined, { signal }).catch(() => undefined), woken]);
    }
    deadline.check(); // a cancel that came with the last progress still wins over the pivot
  } catch (error) {
    await revert.run();
    throw deadline.signal.aborted && ctx.signal.aborted ? cancelled('Moving the VM\'s storage') : error;
  } finally {
    deadline.dispose();
  }

  // 4. The pivot: with the guest paused, so that until `pivoted` is recorded no guest write
  // reaches a target and the sources stay complete (move-recovery.ts relies on it).
  ctx.progress(0.96, 'Switching to the new files');
  const pivotWait = { timeoutMs: PIVOT_TIMEOUT_MS };
  const status = await target.qmp.queryStatus(pivotWait);
  record.guestWasRunning = status.running;
  for (const leg of legs) leg.record.phase = 'pivoting';
  let paused = false;
  try {
    await persist();
    if (status.running) {
      await target.qmp.stop(pivotWait);
      paused = true;
    }
    for (const leg of legs) {
      await leg.job.complete(pivotWait);
      leg.record.phase = 'pivoted';
    }
  } catch (error) {
    // Disks not pivoted go back to their sources; pivoted ones stay on their targets.
    for (const leg of legs) {
      if (leg.record.phase === 'pivoted') continue;
      leg.record.phase = 'copying';
      await leg.job.cancel({ timeoutMs: 30_000 }).catch(() => undefined);
      await deleteDiskNodes(leg.qmp, leg.targetNode, { timeoutMs: 10_000 }).catch(() => undefined);
      await removeTarget(leg.move.path).catch(() => undefined);
    }
    await persist().catch(() => undefined);
    if (paused) await target.qmp.cont(pivotWait).catch(() => undefined);
    for (const leg of legs) leg.job.dispose();
    const pivoted = legs.filter((l) => l.record.phase === 'pivoted').map((l) => l.record.diskId);
    throw new VisorError('failed', BLOCK_ERROR_CODES.moveFailed, `The storage move failed at the pivot: ${(error as Error).message}`, {
      cause: error,
      details: { pivoted, record: structuredClone(record) },
      hint: pivoted.length > 0 ? `Disks ${pivoted.join(', ')} now run from their new files; the others stayed where they were.` : 'Every disk stayed where it was.',
    });
  }
  try {
    await persist();
  } finally {
    if (paused) await target.qmp.cont(pivotWait);
    for (const leg of legs) leg.job.dispose();
  }

  // 5. The sources' nodes go; their files are the caller's. A target copied into with O_DIRECT
  // goes back to the page cache, as the disk runs after a launch (a failure leaves it O_DIRECT:
  // slower for some guests, never wrong).
  for (const leg of legs) {
    await deleteDiskNodes(leg.qmp, leg.serving.nodeName, pivotWait).catch(() => undefined);
    if (leg.directCopy && leg.targetProtocol) await restoreTargetCache(leg.qmp, leg.targetProtocol, pivotWait).catch(() => undefined);
  }
  ctx.progress(1, 'Moved');
  return {
    record: structuredClone(record),
    disks: legs.map((leg) => ({
      diskId: leg.move.disk.id,
      oldPath: leg.move.disk.path,
      oldFormat: leg.move.disk.format,
      newPath: leg.move.path,
      newFormat: leg.move.format,
      nodeName: leg.targetNode,
      where: leg.serving.where,
      blocksSaveState: leg.serving.where === 'qemu' && (leg.move.format === 'vhdx' || leg.move.format === 'vhd'),
    })),
    oldPaths: legs.map((leg) => leg.move.disk.path).filter((path) => !isRemoteLocation(path)),
  };
}

function moveFailed(leg: Leg, why: string): VisorError {
  return new VisorError('failed', BLOCK_ERROR_CODES.moveFailed, `Moving disk "${leg.move.disk.id}" to "${leg.move.path}" failed: ${why}.`, {
    field: 'path',
    hint: 'The disk stays where it was. Check the target\'s free space and permissions.',
  });
}

async function refuseExisting(move: DiskMove): Promise<void> {
  if (move.path === move.disk.path) {
    throw new VisorError('invalid', 'invalid-value', `Disk "${move.disk.id}" already lives at "${move.path}".`, { field: 'path' });
  }
  if (isRemoteLocation(move.path)) return;
  const exists = await stat(move.path).then(
    () => true,
    () => false,
  );
  if (exists) {
    throw new VisorError('conflict', 'target-exists', `The move's target "${move.path}" already exists.`, {
      field: 'path',
      hint: 'Choose a new file name; a move never overwrites a file.',
    });
  }
}

/** The target image: same virtual size, no backing file; VHD at exactly that size. */
async function createImage(path: string, format: DiskFormat, size: number, signal: AbortSignal): Promise<void> {
  const extra = format === 'vhd' ? ['-o', 'subformat=dynamic,force_size=on'] : format === 'vhdx' ? ['-o', 'subformat=dynamic'] : [];
  try {
    await run('qemu-img', ['create', '-q', '-f', formatDriver(format), ...extra, path, String(size)], { signal });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new VisorError('failed', BLOCK_ERROR_CODES.moveFailed, `Could not create the move's target "${path}": ${stderr || (error as Error).message}`, {
      field: 'path',
      cause: error,
    });
  }
}

async function removeTarget(path: string): Promise<void> {
  if (!isRemoteLocation(path)) await rm(path, { force: true });
}

/**
 * The UEFI variable store as one more leg of a move: a raw "disk" with the id
 * FIRMWARE_VARS_MOVE_ID, from the file its pflash serves now to `path`.
 */
async function firmwareVarsMove(qmp: QmpClient, path: string): Promise<DiskMove> {
  const serving = await diskServing(qmp, null, FIRMWARE_VARS_MOVE_ID);
  const disk: DiskAttachment = { id: FIRMWARE_VARS_MOVE_ID, controller: 'virtio', controllerNumber: 0, location: 0, path: serving.filename, format: 'raw', readOnly: false };
  return { disk, path, format: 'raw' };
}
