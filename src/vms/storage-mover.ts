import { randomBytes } from 'node:crypto';
import { constants, copyFile, mkdir, readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { basename, extname, join, relative, resolve, sep } from 'node:path';
import { VisorError, VmMoveStorageSpec, asVisorError, invalid, parseOrThrow } from '../core/index.js';
import type { DiskAttachment, DiskFormat, OperationContext, VmConfig, VmMoveStorageInput } from '../core/index.js';
import { FIRMWARE_VARS_MOVE_ID, isHostDevicePath, isRemoteLocation, recoverStorageMove } from '../engine/qemu/index.js';
import type { DiskMove, MoveRecord } from '../engine/qemu/index.js';
import { folderAt, makeFolderLayout, pathExists, writeFileAtomic } from '../store/index.js';
import type { VmFolder, VmStore } from '../store/index.js';
import { copyDiskFile, prepareConvertDisk } from '../storage/index.js';
import type { VmRecord } from './runtime-record.js';

/**
 * Live storage move (Hyper-V's Move-VMStorage): the VM's disks, and unless `disksOnly` its
 * whole folder — configuration, saved state, checkpoints, firmware variables — go to another
 * folder, drive or share while the guest runs. The VM's registry entry ($VISOR_HOME/vms/<id>)
 * stays; after a whole-folder move it holds a location file naming the new folder (VmStore).
 *
 * Order, so that a crash anywhere leaves the VM on one consistent place: the record first (in
 * the registry entry), then the disks (the engine's mirror and pivot; vm.json names the new
 * disks before the guest resumes), then the rest of the folder is copied and vm.json written
 * there, then the location file switches the VM over in one write, and only then are the old
 * files deleted and the record removed. `recover()` finishes or rolls back from the record.
 */

/** The record of a move in flight, in the VM's registry entry. */
const MOVE_RECORD = 'storage-move.json';
const FIRMWARE_VARS_FILE = 'OVMF_VARS.fd';

/** The engine's record plus the folder part of a whole-folder move. */
interface VmMoveRecord extends MoveRecord {
  /** The VM's folder before and after (null: disks only). */
  folder: { from: string; to: string } | null;
  /** `folder`: every disk is on its new file and the rest of the folder is being copied. */
  stage: 'disks' | 'folder';
}

export interface StorageMovePlan {
  disks: DiskMove[];
  /** A whole-folder move: the folder now and the new one. Null: disks only. */
  folder: { from: VmFolder; to: VmFolder } | null;
  /** The firmware variables file to carry (generation 2, when it exists). */
  firmwareVars: { from: string; to: string } | null;
}

/** What the mover needs of the VM service: the store, and how a changed config is kept. */
export interface MoverContext {
  store: VmStore;
  /** Every other VM's folder, so a destination never lands in one. */
  otherFolders(): string[];
}

export class StorageMover {
  constructor(private readonly ctx: MoverContext) {}

  private recordFile(id: string): string {
    return join(this.ctx.store.registryDir(id), MOVE_RECORD);
  }

  /** Every check a move makes before it changes anything; answers what will move where. */
  async plan(record: VmRecord, input: VmMoveStorageInput): Promise<StorageMovePlan> {
    const spec = parseOrThrow(VmMoveStorageSpec, input);
    const { config } = record;
    if (!['off', 'saved', 'running', 'paused'].includes(record.state)) {
      throw new VisorError('conflict', 'invalid-state', `Cannot move the storage of VM "${record.name}" while it is ${record.state}.`, {
        hint: 'Wait for the operation in flight to end.',
      });
    }
    if (await pathExists(this.recordFile(config.id))) {
      throw new VisorError('conflict', 'move-in-progress', `A storage move of VM "${record.name}" is unfinished.`, { hint: 'Restart the daemon to finish or roll it back, then retry.' });
    }
    const current = this.ctx.store.folder(config.id);
    const destination = resolve(spec.destination);
    const folder = spec.disksOnly ? null : { from: current, to: await checkNewVmFolder(this.ctx, config, destination, current) };
    if (spec.disksOnly) {
      const found = await stat(destination).catch(() => undefined);
      if (!found?.isDirectory()) throw new VisorError('not-found', 'folder-not-found', `No folder exists at "${destination}".`, { field: 'destination' });
    }

    // Files move; pass-through devices and network disks stay where they are.
    const disks: DiskMove[] = [];
    const targets = new Map<string, string>();
    for (const disk of config.disks) {
      if (isHostDevicePath(disk.path) || isRemoteLocation(disk.path)) continue;
      const format: DiskFormat = spec.format ?? disk.format;
      const name = format === disk.format ? basename(disk.path) : `${basename(disk.path, extname(disk.path))}.${format}`;
      const path = join(folder ? folder.to.disksDir : destination, name);
      if (path === disk.path) continue;
      const twin = targets.get(path);
      if (twin) {
        throw new VisorError('conflict', 'target-exists', `Disks "${twin}" and "${disk.id}" would both move to "${path}".`, {
          field: 'destination',
          hint: 'Rename one of the files (or move one disk with --disks-only to another folder) first.',
        });
      }
      targets.set(path, disk.id);
      if (await pathExists(path)) {
        throw new VisorError('conflict', 'target-exists', `"${path}" already exists; a move never overwrites a file.`, { field: 'destination', hint: 'Choose another folder, or delete that file.' });
      }
      disks.push({ disk, path, format });
    }
    if (!folder && disks.length === 0) throw invalid('destination', `VM "${record.name}" has no disk file outside "${destination}" to move.`);
    const vars = join(current.firmwareDir, FIRMWARE_VARS_FILE);
    const firmwareVars = folder && config.generation === 2 && (await pathExists(vars)) ? { from: vars, to: join(folder.to.firmwareDir, FIRMWARE_VARS_FILE) } : null;
    return { disks, folder, firmwareVars };
  }

  /**
   * Carries out a plan (the caller holds the VM's operation lock and has just made it).
   * `saveConfig` persists a config in the VM's current folder and makes it the record's.
   */
  async move(record: VmRecord, plan: StorageMovePlan, ctx: OperationContext, saveConfig: (config: VmConfig) => Promise<void>): Promise<void> {
    const id = record.config.id;
    const recordFile = this.recordFile(id);
    const folderPart = plan.folder ? { from: plan.folder.from.dir, to: plan.folder.to.dir } : null;
    let stage: VmMoveRecord['stage'] = 'disks';
    let last: MoveRecord = { moveId: randomBytes(6).toString('hex'), guestWasRunning: false, disks: [] };
    const saveRecord = (rec: MoveRecord): Promise<void> => {
      last = rec;
      return writeFileAtomic(recordFile, JSON.stringify({ ...rec, folder: folderPart, stage } satisfies VmMoveRecord));
    };
    const switchTo = (rec: MoveRecord): Promise<void> => saveConfig(withMovedDisks(record.config, rec, (d) => d.phase === 'pivoted'));
    const live = record.instance !== null && (record.state === 'running' || record.state === 'paused');
    const share = plan.disks.length + (plan.folder ? 1 : 0);
    const diskCtx: OperationContext = { signal: ctx.signal, progress: (f, m) => ctx.progress((f * plan.disks.length) / Math.max(share, 1), m) };

    // The record before the destination exists: recovery removes a destination it names.
    await saveRecord(last);
    let pivoted = false;
    let oldPaths: string[] = [];
    try {
      if (plan.folder) await makeFolderLayout(plan.folder.to);
      if (plan.firmwareVars) await mkdir(join(plan.firmwareVars.to, '..'), { recursive: true });
      const vars = live && plan.firmwareVars ? { firmwareVars: plan.firmwareVars.to } : {};
      if (live && (plan.disks.length > 0 || plan.firmwareVars)) {
        const result = await record.instance!.moveStorage(plan.disks, diskCtx, {
          ...vars,
          onRecord: async (rec) => {
            await saveRecord(rec);
            if (rec.disks.every((d) => d.phase === 'pivoted')) {
              await switchTo(rec);
              pivoted = true;
            }
          },
        });
        oldPaths = result.oldPaths;
      } else {
        oldPaths = await copyDisks(plan.disks, saveRecord, switchTo, diskCtx);
        pivoted = true;
      }
    } catch (error) {
      // The pivot switched some disks and failed on others: those stay on their new files.
      const rec = (asVisorError(error).details?.record as MoveRecord | undefined) ?? null;
      const partly = rec?.disks.some((d) => d.phase === 'pivoted') ?? false;
      if (rec && partly) {
        await switchTo(rec).catch(() => undefined);
        // Their old files hold nothing the VM needs any more.
        for (const d of rec.disks) if (d.phase === 'pivoted' && d.diskId !== FIRMWARE_VARS_MOVE_ID && !isRemoteLocation(d.oldPath)) await rm(d.oldPath, { force: true });
      }
      if (plan.folder && !partly && !pivoted) await removeCreatedFolder(plan.folder.to, plan.firmwareVars?.to);
      await rm(recordFile, { force: true });
      throw asVisorError(error, 'move-failed');
    }

    if (plan.folder) {
      ctx.progress(Math.max(0, (share - 1) / share), 'Moving the configuration and saved state');
      stage = 'folder';
      await saveRecord(last);
      // Off or saved: the variables file is copied here; running: the mirror moved it.
      if (!live && plan.firmwareVars) await copyNew(plan.firmwareVars.from, plan.firmwareVars.to);
      await this.finishFolderMove(record, plan.folder.from, plan.folder.to);
    }
    for (const old of oldPaths) await rm(old, { force: true });
    if (plan.folder) await removeOldFolder(plan.folder.from);
    await rm(recordFile, { force: true });
    ctx.progress(1, 'Moved');
  }

  /**
   * Copies what is left of the folder (saved state, checkpoints), writes vm.json there and
   * switches the VM over (one atomic write of the location file). The old files stay until
   * removeOldFolder().
   */
  private async finishFolderMove(record: VmRecord, from: VmFolder, to: VmFolder): Promise<void> {
    await makeFolderLayout(to);
    await copyTree(from.stateDir, to.stateDir);
    await copyTree(from.checkpointsDir, to.checkpointsDir);
    await this.ctx.store.save(record.config, to);
    const registry = this.ctx.store.registryDir(record.config.id);
    await this.ctx.store.relocate(record.config.id, to.dir === registry ? null : to.dir);
  }

  /** A move a crash interrupted: finished or rolled back from its record. Call before the VM is used. */
  async recover(record: VmRecord, saveConfig: (config: VmConfig) => Promise<void>): Promise<void> {
    const recordFile = this.recordFile(record.config.id);
    const text = await readFile(recordFile, 'utf8').catch(() => null);
    if (text === null) return;
    try {
      const rec = JSON.parse(text) as VmMoveRecord;
      const decision = await recoverStorageMove(record.instance, rec, { timeoutMs: 60_000 });
      const keepNew = new Set(decision.disks.filter((d) => d.keep === 'new').map((d) => d.diskId));
      const next = withMovedDisks(record.config, rec, (d) => keepNew.has(d.diskId));
      // Disks that keep their source point back at it, whatever vm.json said.
      next.disks = next.disks.map((disk) => {
        const moved = rec.disks.find((d) => d.diskId === disk.id);
        return moved && !keepNew.has(disk.id) ? { ...disk, path: moved.oldPath, format: moved.oldFormat } : disk;
      });
      await saveConfig(next);
      if (rec.folder) {
        const from = folderAt(rec.folder.from);
        const to = folderAt(rec.folder.to);
        // Every disk on its new file (the move's own record says so): finish the folder.
        const disksDone = rec.stage === 'folder' || (rec.disks.length > 0 && decision.disks.every((d) => d.keep === 'new'));
        const vars = join(from.firmwareDir, FIRMWARE_VARS_FILE);
        if (this.ctx.store.folder(record.config.id).dir === to.dir) {
          await removeOldFolder(from); // switched before the crash: only the old files are left
        } else if (disksDone) {
          const newVars = join(to.firmwareDir, FIRMWARE_VARS_FILE);
          if (!keepNew.has(FIRMWARE_VARS_MOVE_ID) && (await pathExists(vars)) && !(await pathExists(newVars))) await copyNew(vars, newVars);
          await this.finishFolderMove(record, from, to);
          await removeOldFolder(from);
        } else if (keepNew.size === 0) {
          await removeCreatedFolder(to, join(to.firmwareDir, FIRMWARE_VARS_FILE));
        }
      }
      await rm(recordFile, { force: true });
    } catch (error) {
      record.stateReason = `An interrupted storage move could not be recovered: ${asVisorError(error).message}`;
      console.error(`visord: VM "${record.name}": ${record.stateReason}`);
    }
  }
}

/**
 * A folder a VM can move (or be created) into: new or empty, outside its own folder, other VMs'
 * folders and $VISOR_HOME/vms — except its own registry entry, which is "back home". Refusals
 * name `field` (destination, location).
 */
export async function checkNewVmFolder(
  ctx: MoverContext,
  config: Pick<VmConfig, 'id' | 'name'>,
  destination: string,
  current: VmFolder | null,
  field = 'destination',
): Promise<VmFolder> {
  const registry = ctx.store.registryDir(config.id);
  const inside = (parent: string): boolean => destination === parent || destination.startsWith(parent.endsWith(sep) ? parent : parent + sep);
  if (current) {
    if (destination === current.dir) throw invalid(field, `VM "${config.name}" already lives in "${destination}".`);
    if (inside(current.dir)) throw invalid(field, `"${destination}" is inside the VM's own folder "${current.dir}".`, 'Choose a folder outside it.');
    if (current.dir.startsWith(destination + sep)) throw invalid(field, `"${destination}" contains the VM's folder "${current.dir}".`, 'Choose a new or empty folder.');
  }
  if (destination !== registry && inside(join(ctx.store.home, 'vms'))) {
    throw invalid(field, `"${destination}" is inside Visor's own VM registry.`, 'Choose a folder outside $VISOR_HOME/vms.');
  }
  for (const other of ctx.otherFolders()) {
    if (other === current?.dir) continue;
    if (inside(other) || other.startsWith(destination + sep)) throw invalid(field, `"${destination}" overlaps the folder of another VM ("${other}").`);
  }
  if (destination !== registry) {
    const found = await stat(destination).catch(() => undefined);
    if (found && !found.isDirectory()) throw invalid(field, `"${destination}" is a file, not a folder.`);
    if (found && (await readdir(destination)).length > 0) {
      throw new VisorError('conflict', 'folder-not-empty', `"${destination}" is not empty; a VM goes into a new or empty folder.`, {
        field,
        hint: field === 'destination' ? 'Name a new folder (it is created), or move only the disks with --disks-only.' : 'Name a new folder (it is created).',
      });
    }
  }
  return folderAt(destination);
}

/** The move of an off or saved VM: copy (a differencing disk flattened) each disk, then switch vm.json; answers the old files. */
async function copyDisks(
  moves: DiskMove[],
  saveRecord: (rec: MoveRecord) => Promise<void>,
  switchTo: (rec: MoveRecord) => Promise<void>,
  ctx: OperationContext,
): Promise<string[]> {
  if (moves.length === 0) return [];
  const rec: MoveRecord = {
    moveId: randomBytes(6).toString('hex'),
    guestWasRunning: false,
    disks: moves.map((m) => ({
      diskId: m.disk.id,
      oldPath: m.disk.path,
      oldFormat: m.disk.format,
      newPath: m.path,
      newFormat: m.format,
      targetNode: '',
      sourceNode: '',
      jobId: '',
      where: 'qemu',
      phase: 'copying',
    })),
  };
  await saveRecord(rec);
  try {
    for (const [i, m] of moves.entries()) {
      const part: OperationContext = { signal: ctx.signal, progress: (f, message) => ctx.progress((i + f) / moves.length, message ?? 'Copying disks') };
      // A live move makes a differencing disk standalone (sync=full); so does this one.
      if (m.format === m.disk.format && !m.disk.backing) await copyDiskFile(m.disk.path, m.path, part);
      else await (await prepareConvertDisk({ path: m.disk.path, destination: m.path, format: m.format }))(part);
    }
  } catch (error) {
    for (const m of moves) await rm(m.path, { force: true });
    throw asVisorError(error, 'move-failed');
  }
  for (const d of rec.disks) d.phase = 'pivoted';
  await saveRecord(rec);
  await switchTo(rec);
  return moves.map((m) => m.disk.path);
}

/** The config with the moved disks (those `moved` picks) on their new, standalone files. */
function withMovedDisks(config: VmConfig, rec: MoveRecord, moved: (d: MoveRecord['disks'][number]) => boolean): VmConfig {
  return {
    ...config,
    disks: config.disks.map((disk): DiskAttachment => {
      const m = rec.disks.find((d) => d.diskId === disk.id);
      if (!m || !moved(m)) return disk;
      const { backing: _standaloneNow, ...rest } = disk;
      return { ...rest, path: m.newPath, format: m.newFormat };
    }),
  };
}

async function copyNew(from: string, to: string): Promise<void> {
  await mkdir(join(to, '..'), { recursive: true });
  await copyFile(from, to, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
}

/** Copies every file under `from` into `to` (which may hold some already: kept). */
async function copyTree(from: string, to: string): Promise<void> {
  const entries = await readdir(from, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile() || entry.name.endsWith('.partial')) continue;
    const source = join(entry.parentPath, entry.name);
    const target = join(to, relative(from, source));
    if (!(await pathExists(target))) await copyNew(source, target);
  }
}

/**
 * Removes what a move left in the old folder: vm.json, saved state, checkpoints and firmware
 * files (copied over), then the folders if empty. Anything else (a detached disk someone kept
 * in disks/) stays, with its folder. The registry entry itself and its location file stay.
 */
async function removeOldFolder(from: VmFolder): Promise<void> {
  await rm(from.configFile, { force: true });
  for (const dir of [from.stateDir, from.checkpointsDir]) await rm(dir, { recursive: true, force: true });
  await rm(join(from.firmwareDir, FIRMWARE_VARS_FILE), { force: true });
  // Only empty folders go: the registry entry keeps its location file.
  for (const dir of [from.firmwareDir, from.disksDir, from.dir]) await rmdir(dir).catch(() => undefined);
}

/**
 * Undoes the destination of a move that did not happen: the engine or copyDisks already removed
 * the disk targets; the firmware copy goes, then the folders the move made, if empty.
 */
async function removeCreatedFolder(to: VmFolder, firmwareVars: string | undefined): Promise<void> {
  if (firmwareVars) await rm(firmwareVars, { force: true });
  for (const dir of [to.disksDir, to.stateDir, to.checkpointsDir, to.firmwareDir, to.dir]) await rmdir(dir).catch(() => undefined);
}
