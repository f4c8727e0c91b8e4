import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { access, constants, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  ExecSpec,
  VisorError,
  VmDiskAddSpec,
  VmDvdSpec,
  VmCreateSpec,
  VmUpdateSpec,
  asVisorError,
  invalid,
  newId,
  notFound,
  parseOrThrow,
  quietContext,
} from '../core/index.js';
import type { DiskAttachment, HostStopResult, VmMoveStorageInput, ExecResult, OperationContext, VmAction, VmConfig, VmDiskAddInput, VmState, VmView } from '../core/index.js';
import { VmStore, makeFolderLayout, writeFileAtomic } from '../store/index.js';
import type { VmFolder } from '../store/index.js';
import { copyDiskFile, createDifferencingChild, createDisk, validatePassthroughDevice } from '../storage/index.js';
import { GuestAgent, isHostDevicePath, launchVm, processStartTime, reattachVm } from '../engine/qemu/index.js';
import type { QemuInstance, VmPaths } from '../engine/qemu/index.js';
import { getHostInfo, readBootId } from '../host/index.js';
import type { HostInfo } from '../host/index.js';
import { applyVmUpdate, buildVmConfig } from './build-config.js';
import type { HostLimits } from './build-config.js';
import { ImageLibrary } from './image-library.js';
import { KeyedMutex } from './keyed-mutex.js';
import { chooseSlot, nextDiskId } from './disk-slots.js';
import { assertLegal } from './lifecycle.js';
import { checkOpenableDisk } from './openable-disk.js';
import { VmRecord } from './runtime-record.js';
import { StorageMover, checkNewVmFolder } from './storage-mover.js';
import type { MoverContext, StorageMovePlan } from './storage-mover.js';
import type { VmEvents, VmService } from './vm-service.js';

export interface VmServiceOptions {
  /** $VISOR_HOME: VM folders, the image library, jobs. */
  home: string;
  /** $VISOR_RUN: sockets, pidfiles and logs of running VMs. */
  run: string;
  /** Extra read-only image folders after $VISOR_HOME/images (e.g. this checkout's guests/out). */
  imageFolders?: readonly string[];
  /** Host facts, when the caller already has them (tests, the daemon). */
  host?: HostInfo;
}

const SAVED_STATE = 'saved.vmstate';
const SAVED_META = 'saved.json';
/** How long the host's shutdown step waits for a guest to shut down before turning it off. */
const HOST_SHUTDOWN_GRACE_SECONDS = 120;

/** Builds the VM service: the one owner of VMs on this host (see vm-service.ts). */
export async function createVmService(options: VmServiceOptions): Promise<VmService> {
  const host = options.host ?? (await getHostInfo({ cacheDir: options.run }));
  return new LocalVmService(options, host);
}

class LocalVmService implements VmService {
  readonly events = new EventEmitter<VmEvents>();
  private readonly store: VmStore;
  private readonly library: ImageLibrary;
  private readonly records = new Map<string, VmRecord>();
  private readonly mutex = new KeyedMutex();
  /** Names claimed by creates in flight, so two creates cannot take one name. */
  private readonly pendingNames = new Set<string>();
  private readonly limits: HostLimits;
  private readonly mover: StorageMover;
  private readonly moverContext: MoverContext;
  /** The folder a VM lives in now, for its views. */
  private readonly folderOf = (id: string): string => this.store.folder(id).dir;

  constructor(
    private readonly options: VmServiceOptions,
    private readonly host: HostInfo,
  ) {
    this.store = new VmStore(options.home);
    this.library = new ImageLibrary([join(options.home, 'images'), ...(options.imageFolders ?? [])]);
    this.limits = { logicalCpus: host.cpu.count, totalMemory: host.memory.total };
    this.moverContext = { store: this.store, otherFolders: () => [...this.records.keys()].map((id) => this.store.folder(id).dir) };
    this.mover = new StorageMover(this.moverContext);
  }

  // ---------------------------------------------------------------- read side

  list(): VmView[] {
    return [...this.records.values()].map((r) => r.view()).sort((a, b) => a.config.name.localeCompare(b.config.name));
  }

  get(ref: string): VmView {
    return this.find(ref).view();
  }

  async images() {
    return this.library.list();
  }

  serialSocketPath(ref: string): string {
    return join(this.paths(this.find(ref).config).runDir, 'serial.sock');
  }

  vncSocketPath(ref: string): string {
    return join(this.paths(this.find(ref).config).runDir, 'vnc.sock');
  }

  // ---------------------------------------------------------------- definition

  async validateCreate(input: VmCreateSpec): Promise<void> {
    await this.planCreate(input);
  }

  checkAction(ref: string, action: VmAction): void {
    const record = this.find(ref);
    assertLegal(action, record.state, record.name);
  }

  /** Everything a create checks, before anything is written: a refused create leaves no trace. */
  private async planCreate(input: VmCreateSpec) {
    const spec = parseOrThrow(VmCreateSpec, input);
    if (this.pendingNames.has(spec.name.toLowerCase())) {
      throw new VisorError('conflict', 'duplicate-name', `A VM named "${spec.name}" is being created.`, { field: 'name' });
    }
    if (spec.dvdIso) await checkReadableFile(spec.dvdIso, 'dvdIso', 'ISO file');
    const image = spec.image === undefined ? null : await this.library.resolve(spec.image);
    if (spec.differencing && !image) {
      throw invalid('differencing', 'A differencing disk needs a parent: give --image.', 'Use --image NAME (or a template path or URL) with --differencing.');
    }
    // A differencing child is qcow2 whatever its parent: QEMU opens no differencing VHDX/VHD.
    const format = spec.differencing ? 'qcow2' : (image?.format ?? spec.diskFormat ?? 'vhdx');
    if (image && spec.diskFormat && spec.diskFormat !== format) {
      const why = spec.differencing ? 'a differencing child is qcow2' : `image "${image.name}" is ${image.format}`;
      throw invalid('diskFormat', `diskFormat ${spec.diskFormat} cannot be used: ${why}.`, 'Leave --disk-format out.');
    }
    const id = newId();
    const folder = spec.location === undefined ? this.store.folder(id) : await checkNewVmFolder(this.moverContext, { id, name: spec.name }, resolve(spec.location), null, 'location');
    const backing = spec.differencing && image ? { backing: { path: image.path, format: image.format } } : {};
    const bootDisk = image || spec.diskSize ? { path: join(folder.disksDir, `${spec.name}.${format}`), format, ...backing } : null;
    const config = buildVmConfig(spec, {
      id,
      now: new Date(),
      host: this.limits,
      existing: this.configs(),
      randomBytes: (n) => randomBytes(n),
      bootDisk,
      imageGenerations: image?.generations ?? null,
      sourceImage: image?.name ?? null,
      qemuVersion: this.host.qemu?.version ?? null,
    });
    return { spec, config, image, folder, bootDisk, format };
  }

  async create(input: VmCreateSpec, ctx: OperationContext): Promise<VmView> {
    const { spec, config, image, folder, bootDisk, format } = await this.planCreate(input);
    const id = config.id;
    this.pendingNames.add(config.name.toLowerCase());
    try {
      // The registry entry (and location file) first, vm.json last: a crash between leaves no VM.
      await this.store.createFolders(id);
      try {
        if (spec.location !== undefined) {
          await this.store.relocate(id, folder.dir);
          await makeFolderLayout(folder);
        }
        if (image && bootDisk?.backing) await createDifferencingChild(bootDisk.path, bootDisk.backing, ctx.signal);
        else if (image && bootDisk) await copyDiskFile(image.path, bootDisk.path, ctx);
        else if (bootDisk && spec.diskSize) await createDisk(bootDisk.path, format, spec.diskSize, ctx.signal);
        await this.store.save(config);
      } catch (error) {
        await rm(folder.dir, { recursive: true, force: true });
        await this.store.remove(id).catch(() => undefined);
        throw error;
      }
    } finally {
      this.pendingNames.delete(config.name.toLowerCase());
    }
    const record = new VmRecord(config, 'off', this.folderOf);
    this.records.set(id, record);
    this.events.emit('vm-created', { vmId: id, name: config.name });
    return record.view();
  }

  async update(ref: string, input: VmUpdateSpec): Promise<VmView> {
    const spec = parseOrThrow(VmUpdateSpec, input);
    const record = this.find(ref);
    return this.mutex.run(record.config.id, async () => {
      const next = applyVmUpdate(record.config, spec, { host: this.limits, existing: this.configs() });
      const hardware = spec.processorCount !== undefined || spec.startupMemory !== undefined || spec.display !== undefined || spec.secureBoot !== undefined;
      if (hardware && record.state !== 'off') {
        throw new VisorError('conflict', 'invalid-state', `Cannot change the hardware of VM "${record.name}" while it is ${record.state}.`, {
          hint: `Shut it down first with "visor vm stop ${record.name}".`,
        });
      }
      if (spec.dvdIso) await checkReadableFile(spec.dvdIso, 'dvdIso', 'ISO file');
      await this.store.save(next);
      record.config = next;
      this.events.emit('vm-updated', { vmId: next.id, name: next.name });
      return record.view();
    });
  }

  async delete(ref: string, options: { force: boolean }): Promise<void> {
    const record = this.find(ref);
    if (options.force && record.instance) await this.turnOff(ref);
    await this.mutex.run(record.config.id, async () => {
      assertLegal('delete', record.state, record.name);
      await this.store.remove(record.config.id);
      await rm(this.paths(record.config).runDir, { recursive: true, force: true });
      this.records.delete(record.config.id);
      this.events.emit('vm-deleted', { vmId: record.config.id, name: record.name });
    });
  }

  // ---------------------------------------------------------------- lifecycle

  async start(ref: string, ctx: OperationContext): Promise<VmView> {
    const record = this.find(ref);
    return this.mutex.run(record.config.id, async () => {
      assertLegal('start', record.state, record.name);
      const fromSaved = record.state === 'saved';
      const folder = this.store.folder(record.config.id);
      const stateFile = join(folder.stateDir, SAVED_STATE);
      const abort = new AbortController();
      record.operation = abort;
      const signal = AbortSignal.any([ctx.signal, abort.signal]);
      this.setState(record, 'starting', null);
      let instance: QemuInstance | null = null;
      try {
        ctx.progress(0.1, fromSaved ? 'Restoring saved state' : 'Starting QEMU');
        instance = await launchVm({
          config: record.config,
          paths: this.paths(record.config),
          accelerator: this.host.accelerator.kind,
          machineType: record.config.machineType ?? undefined,
          incomingStateFile: fromSaved ? stateFile : undefined,
          signal,
        });
        if (fromSaved) {
          await instance.resume();
          // The state is consumed: from here the guest moves on and the file is stale.
          await rm(stateFile, { force: true });
          await rm(join(folder.stateDir, SAVED_META), { force: true });
          record.savedAt = null;
        }
      } catch (error) {
        if (instance) await instance.quit().catch(() => undefined);
        this.setState(record, fromSaved ? 'saved' : 'off', `Start failed: ${asVisorError(error).message}`);
        throw asVisorError(error, 'start-failed');
      } finally {
        record.operation = null;
      }
      this.adopt(record, instance, 'running');
      ctx.progress(1, 'Running');
      return record.view();
    });
  }

  async shutDown(
    ref: string,
    options: { timeoutSeconds: number; force: boolean },
    ctx: OperationContext,
  ): Promise<VmView> {
    const record = this.find(ref);
    return this.mutex.run(record.config.id, async () => {
      assertLegal('shut-down', record.state, record.name);
      const instance = this.instanceOf(record);
      this.setState(record, 'stopping', null);
      record.expectingExit = true;
      const deadline = AbortSignal.timeout(options.timeoutSeconds * 1000);
      try {
        ctx.progress(0.1, 'Pressed the power button');
        await instance.powerDown();
        await instance.waitForExit(AbortSignal.any([deadline, ctx.signal]));
      } catch (error) {
        if (ctx.signal.aborted || !deadline.aborted) {
          record.expectingExit = false;
          this.setState(record, 'running', null);
          throw asVisorError(error);
        }
        if (!options.force) {
          record.expectingExit = false;
          this.setState(record, 'running', null);
          throw new VisorError('failed', 'shutdown-timeout', `VM "${record.name}" did not shut down within ${options.timeoutSeconds} s.`, {
            hint: `The guest may ignore the ACPI power button. Turn it off with "visor vm stop ${record.name} --force".`,
          });
        }
        await instance.quit();
      }
      this.retire(record, 'off', null);
      return record.view();
    });
  }

  async turnOff(ref: string): Promise<VmView> {
    const record = this.find(ref);
    assertLegal('turn-off', record.state, record.name);
    // Turning off cuts through whatever is in flight (a hung start or shut-down).
    record.operation?.abort(new VisorError('cancelled', 'cancelled', 'The VM was turned off.'));
    return this.mutex.run(record.config.id, async () => {
      if (!record.instance) return record.view();
      record.expectingExit = true;
      await record.instance.quit();
      this.retire(record, 'off', 'Turned off');
      return record.view();
    });
  }

  async save(ref: string, ctx: OperationContext): Promise<VmView> {
    const record = this.find(ref);
    return this.mutex.run(record.config.id, async () => {
      assertLegal('save', record.state, record.name);
      const instance = this.instanceOf(record);
      const previous = record.state;
      const folder = this.store.folder(record.config.id);
      const partial = join(folder.stateDir, `${SAVED_STATE}.partial`);
      this.setState(record, 'saving', null);
      // saveState() ends QEMU once the state is on disk: that exit is ours, not a crash.
      record.expectingExit = true;
      try {
        await instance.saveState(partial, ctx);
        // The guest is stopped and its state complete on disk: only now is it "saved".
        await rename(partial, join(folder.stateDir, SAVED_STATE));
        const savedAt = new Date().toISOString();
        await writeFileAtomic(join(folder.stateDir, SAVED_META), JSON.stringify({ savedAt, configId: record.config.id }));
        record.savedAt = savedAt;
      } catch (error) {
        record.expectingExit = false;
        await rm(partial, { force: true });
        // Nothing lost: the guest goes on as it was.
        if (previous === 'running') await instance.resume().catch(() => undefined);
        this.setState(record, previous, `Save failed: ${asVisorError(error).message}`);
        throw asVisorError(error, 'save-failed');
      }
      this.retire(record, 'saved', null);
      return record.view();
    });
  }

  async pause(ref: string): Promise<VmView> {
    return this.simple(ref, 'pause', 'paused', (i) => i.pause());
  }

  async resume(ref: string): Promise<VmView> {
    return this.simple(ref, 'resume', 'running', (i) => i.resume());
  }

  async restart(ref: string): Promise<VmView> {
    return this.simple(ref, 'restart', 'running', (i) => i.reset());
  }

  async stopVmsForHost(ctx: OperationContext): Promise<HostStopResult[]> {
    const live = [...this.records.values()].filter((r) => r.state === 'running' || r.state === 'paused');
    let done = 0;
    ctx.progress(0, `Stopping ${live.length} VM${live.length === 1 ? '' : 's'}`);
    const results = await Promise.all(
      live.map(async (record): Promise<HostStopResult> => {
        const action = record.config.automaticStopAction;
        const id = record.config.id;
        let error: string | null = null;
        // Stopped by the host, not by a person: start-if-running starts it after the next boot.
        record.stoppedByHost = true;
        try {
          if (action === 'save') await this.save(id, quietContext());
          else if (action === 'turn-off') await this.turnOff(id);
          else {
            if (record.state === 'paused') await this.resume(id);
            // The host will not wait for ever: a guest that ignores the button is turned off.
            await this.shutDown(id, { timeoutSeconds: HOST_SHUTDOWN_GRACE_SECONDS, force: true }, quietContext());
          }
        } catch (e) {
          error = asVisorError(e).message;
          if (record.state === 'running' || record.state === 'paused') record.stoppedByHost = false;
        }
        ctx.progress(++done / live.length, `${record.name}: ${record.state}`);
        return { name: record.name, action, state: record.state, error };
      }),
    );
    return results.sort((a, b) => a.name.localeCompare(b.name));
  }

  private async simple(
    ref: string,
    action: 'pause' | 'resume' | 'restart',
    next: VmState,
    effect: (instance: QemuInstance) => Promise<void>,
  ): Promise<VmView> {
    const record = this.find(ref);
    return this.mutex.run(record.config.id, async () => {
      assertLegal(action, record.state, record.name);
      await effect(this.instanceOf(record));
      this.setState(record, next, null);
      return record.view();
    });
  }

  // ---------------------------------------------------------------- disks and DVD

  listDisks(ref: string): DiskAttachment[] {
    return this.find(ref).config.disks;
  }

  /** Every check addDisk makes before it changes anything; answers the attachment to make. */
  async validateAddDisk(ref: string, input: VmDiskAddInput): Promise<{ disk: DiskAttachment; create: { size: number } | null }> {
    const spec = parseOrThrow(VmDiskAddSpec, input);
    const record = this.find(ref);
    const config = record.config;
    this.diskChangeMode(record, spec.controller, 'attach'); // refused now if it cannot happen
    const id = nextDiskId(config);
    const slot = chooseSlot(config, spec);
    if (spec.controller === 'virtio' && slot.controllerNumber !== 0) throw invalid('controllerNumber', 'virtio disks use controller 0.');
    if (spec.new) {
      const path = join(this.store.folder(config.id).disksDir, `${config.name}-${id}.${spec.new.format}`);
      const disk: DiskAttachment = { id, controller: spec.controller, ...slot, path, format: spec.new.format, readOnly: spec.readOnly };
      return { disk, create: { size: spec.new.size } };
    }
    const path = spec.path!;
    for (const other of this.records.values()) {
      const user = other.config.disks.find((d) => d.path === path);
      if (user) {
        throw new VisorError('conflict', 'disk-in-use', `"${path}" is already attached to VM "${other.name}" as ${user.id}.`, {
          field: 'path',
          hint: other === record ? 'It is attached already.' : `Remove it from "${other.name}" first, or attach a copy (visor disk convert).`,
        });
      }
    }
    if (spec.passthrough || isHostDevicePath(path)) {
      if (!spec.passthrough) {
        throw invalid('path', `"${path}" is a host device; give it with --passthrough.`, 'A pass-through disk gives the whole device to the VM.');
      }
      const inUse = [...this.records.values()].flatMap((r) => r.config.disks.filter((d) => isHostDevicePath(d.path)).map((d) => d.path));
      await validatePassthroughDevice(path, { inUse, field: 'path' });
      return { disk: { id, controller: spec.controller, ...slot, path, format: 'raw', readOnly: spec.readOnly }, create: null };
    }
    const exists = await stat(path).catch(() => undefined);
    if (!exists) throw new VisorError('not-found', 'disk-not-found', `No disk exists at "${path}".`, { field: 'path' });
    if (!exists.isFile()) throw invalid('path', `"${path}" is not a disk file.`, 'A host block device is attached with --passthrough.');
    const format = await checkOpenableDisk(path, { field: 'path', what: `attach "${path}"` });
    return { disk: { id, controller: spec.controller, ...slot, path, format, readOnly: spec.readOnly }, create: null };
  }

  async addDisk(ref: string, input: VmDiskAddInput): Promise<VmView> {
    const record = this.find(ref);
    return this.mutex.run(record.config.id, async () => {
      const { disk, create } = await this.validateAddDisk(ref, input);
      const live = this.diskChangeMode(record, disk.controller, 'attach');
      if (create) {
        await mkdir(this.store.folder(record.config.id).disksDir, { recursive: true });
        await createDisk(disk.path, disk.format, create.size);
      }
      const undo: Array<() => Promise<void>> = [];
      if (create) undo.push(() => rm(disk.path, { force: true }));
      try {
        if (live) {
          await this.instanceOf(record).addDisk(disk, { generation: record.config.generation });
          undo.push(() => this.instanceOf(record).removeDisk(disk.id));
        }
        const next = { ...record.config, disks: [...record.config.disks, disk] };
        await this.store.save(next);
        record.config = next;
      } catch (error) {
        for (const step of undo.reverse()) await step().catch(() => undefined);
        throw asVisorError(error, 'disk-add-failed');
      }
      this.events.emit('vm-updated', { vmId: record.config.id, name: record.name });
      return record.view();
    });
  }

  /** Detaches a disk (hot-removed while running); the file is kept. */
  async removeDisk(ref: string, diskId: string): Promise<VmView> {
    const record = this.find(ref);
    return this.mutex.run(record.config.id, async () => {
      const disk = record.config.disks.find((d) => d.id === diskId);
      if (!disk) {
        throw new VisorError('not-found', 'disk-not-found', `VM "${record.name}" has no disk "${diskId}".`, {
          field: 'diskId',
          hint: `List its disks with "visor vm disk list ${record.name}".`,
        });
      }
      const live = this.diskChangeMode(record, disk.controller, 'detach');
      if (live) await this.instanceOf(record).removeDisk(disk.id);
      const next = { ...record.config, disks: record.config.disks.filter((d) => d.id !== diskId) };
      try {
        await this.store.save(next);
      } catch (error) {
        if (live) await this.instanceOf(record).addDisk(disk, { generation: record.config.generation }).catch(() => undefined);
        throw asVisorError(error, 'disk-remove-failed');
      }
      record.config = next;
      this.events.emit('vm-updated', { vmId: record.config.id, name: record.name });
      return record.view();
    });
  }

  /** Inserts an ISO (live while running) or ejects it (null). */
  async setDvd(ref: string, input: VmDvdSpec): Promise<VmView> {
    const spec = parseOrThrow(VmDvdSpec, input);
    const record = this.find(ref);
    return this.mutex.run(record.config.id, async () => {
      if (spec.iso) await checkReadableFile(spec.iso, 'iso', 'ISO file');
      const running = record.state === 'running' || record.state === 'paused';
      if (!running && record.state !== 'off') {
        throw new VisorError('conflict', 'invalid-state', `Cannot change the DVD of VM "${record.name}" while it is ${record.state}.`, {
          hint: record.state === 'saved' ? `Start it first with "visor vm start ${record.name}".` : 'Wait for the operation in flight to end.',
        });
      }
      const previous = record.config.dvd;
      if (!previous && running) {
        throw new VisorError('conflict', 'no-dvd-drive', `VM "${record.name}" has no DVD drive, and one cannot be added while it runs.`, {
          hint: `Turn it off, then "visor vm dvd set ${record.name} ISO" adds one.`,
        });
      }
      const next = applyVmUpdate(record.config, { dvdIso: spec.iso }, { host: this.limits, existing: this.configs() });
      if (running) await this.instanceOf(record).changeDvdMedium(spec.iso);
      try {
        await this.store.save(next);
      } catch (error) {
        if (running) await this.instanceOf(record).changeDvdMedium(previous?.iso ?? null).catch(() => undefined);
        throw asVisorError(error, 'dvd-change-failed');
      }
      record.config = next;
      this.events.emit('vm-updated', { vmId: next.id, name: next.name });
      return record.view();
    });
  }

  /**
   * Whether a disk change happens live (true: the VM runs, the device is hot-plugged) or only in
   * the configuration (false: the VM is off). Refuses IDE while running and every other state.
   */
  private diskChangeMode(record: VmRecord, controller: DiskAttachment['controller'], what: 'attach' | 'detach'): boolean {
    if (record.state === 'off') return false;
    if (record.state !== 'running' && record.state !== 'paused') {
      throw new VisorError('conflict', 'invalid-state', `Cannot ${what} a disk of VM "${record.name}" while it is ${record.state}.`, {
        hint: record.state === 'saved' ? `Start it first with "visor vm start ${record.name}", or delete its saved state by turning it off.` : 'Wait for the operation in flight to end.',
      });
    }
    if (controller === 'ide') {
      throw new VisorError('conflict', 'ide-not-hotpluggable', `Cannot ${what} an IDE disk while VM "${record.name}" runs: IDE has no hot-plug.`, {
        field: 'controller',
        hint: `Use --controller scsi (or virtio), or shut the VM down first with "visor vm stop ${record.name}".`,
      });
    }
    return true;
  }

  // ---------------------------------------------------------------- storage move

  /** Every check moveStorage makes before it changes anything; answers what moves where. */
  async validateMoveStorage(ref: string, input: VmMoveStorageInput): Promise<StorageMovePlan> {
    return this.mover.plan(this.find(ref), input);
  }

  /** Moves the VM's disks, and unless disksOnly its whole folder: see storage-mover.ts. */
  async moveStorage(ref: string, input: VmMoveStorageInput, ctx: OperationContext): Promise<VmView> {
    const record = this.find(ref);
    return this.mutex.run(record.config.id, async () => {
      const plan = await this.mover.plan(record, input);
      await this.mover.move(record, plan, ctx, (config) => this.saveConfig(record, config));
      this.events.emit('vm-updated', { vmId: record.config.id, name: record.name });
      return record.view();
    });
  }

  /** Finishes or rolls back a move a crash interrupted (storage-mover.ts). */
  private async recoverMove(record: VmRecord): Promise<void> {
    await this.mover.recover(record, (config) => this.saveConfig(record, config));
  }

  /** Writes vm.json (in the VM's current folder) and makes it the record's config. */
  private async saveConfig(record: VmRecord, config: VmConfig): Promise<void> {
    await this.store.save(config);
    record.config = config;
  }

  // ---------------------------------------------------------------- guest

  async exec(ref: string, input: ExecSpec, signal?: AbortSignal): Promise<ExecResult> {
    const spec = parseOrThrow(ExecSpec, input);
    const record = this.find(ref);
    if (record.state !== 'running') {
      throw new VisorError('conflict', 'invalid-state', `Cannot run a command in VM "${record.name}": it is ${record.state}.`, {
        hint: 'The guest agent answers only while the VM runs.',
      });
    }
    const agent = await GuestAgent.connect(join(this.paths(record.config).runDir, 'qga.sock'), { signal, timeoutMs: 5000 });
    try {
      const [path = '', ...args] = spec.command;
      return await agent.exec(path, args, { input: spec.input, timeoutMs: spec.timeoutSeconds * 1000, signal });
    } finally {
      agent.dispose();
    }
  }

  async screenshot(ref: string): Promise<Buffer> {
    const record = this.find(ref);
    return this.instanceOf(record).screendump();
  }

  // ---------------------------------------------------------------- recovery

  async recover(): Promise<void> {
    await this.store.sweep();
    const { vms, broken, unfinished } = await this.store.loadAll();
    for (const item of broken) console.error(`visord: skipping VM folder ${item.dir}: ${item.error}`);
    // Creates cut short by a crash (no daemon creates anything before recover() returns).
    await Promise.all(unfinished.map((dir) => rm(dir, { recursive: true, force: true })));
    await Promise.all(vms.map((config) => this.recoverOne(config)));
    await this.applyAutomaticStart();
  }

  /**
   * Hyper-V's automatic start action, applied by the first daemon of each host boot (a daemon
   * restarted after a crash starts nothing): `start` always, `start-if-running` when the VM was
   * running when the host went down (its `state/running` marker survived).
   */
  private async applyAutomaticStart(): Promise<void> {
    const marker = join(this.options.run, 'boot-id');
    const bootId = await readBootId().catch(() => 'unknown');
    const seen = await readFile(marker, 'utf8').catch(() => '');
    if (seen.trim() === bootId) return;
    await mkdir(this.options.run, { recursive: true });
    await writeFileAtomic(marker, `${bootId}\n`);
    for (const record of this.records.values()) {
      const action = record.config.automaticStartAction;
      if (action === 'nothing' || (record.state !== 'off' && record.state !== 'saved')) continue;
      const wasRunning = await access(this.runningMarker(record)).then(() => true, () => false);
      if (action === 'start-if-running' && !wasRunning) continue;
      this.start(record.config.id, quietContext()).catch((error: unknown) => {
        console.error(`visord: automatic start of VM "${record.name}" failed: ${asVisorError(error).message}`);
      });
    }
  }

  /** Present while the VM runs; what `start-if-running` looks at after a host reboot. */
  private runningMarker(record: VmRecord): string {
    return join(this.store.folder(record.config.id).stateDir, 'running');
  }

  private async recoverOne(config: VmConfig): Promise<void> {
    const folder = this.store.folder(config.id);
    // A save cut short by a crash: the VM either still runs (reattached below) or is off.
    await rm(join(folder.stateDir, `${SAVED_STATE}.partial`), { force: true });
    const savedAt = await readSavedAt(folder);
    const record = new VmRecord(config, savedAt ? 'saved' : 'off', this.folderOf);
    record.savedAt = savedAt;
    this.records.set(config.id, record);
    const found = await reattachVm({ config, paths: this.paths(config) }).catch((error: unknown) => ({
      exited: true as const,
      reason: asVisorError(error).message,
    }));
    if (found === null) {
      await this.recoverMove(record);
      return;
    }
    if ('exited' in found) {
      record.stateReason = `QEMU exited while the daemon was not running: ${found.reason}`;
      await rm(this.paths(config).runDir, { recursive: true, force: true });
      await this.recoverMove(record);
      return;
    }
    record.instance = found;
    await this.recoverMove(record);
    record.instance = null;
    const status = await found.status();
    this.adopt(record, found, status === 'paused' ? 'paused' : 'running');
    // Uptime counts from QEMU's start, not from this daemon's.
    record.runningSince = (await processStartTime(found.pid))?.toISOString() ?? record.runningSince;
  }

  async close(): Promise<void> {
    for (const record of this.records.values()) {
      record.instance?.dispose();
      record.instance = null;
    }
  }

  // ---------------------------------------------------------------- helpers

  private find(ref: string): VmRecord {
    const byId = this.records.get(ref);
    if (byId) return byId;
    for (const record of this.records.values()) if (record.name === ref) return record;
    throw notFound('VM', ref, 'List VMs with "visor vm list".');
  }

  private configs(): VmConfig[] {
    return [...this.records.values()].map((r) => r.config);
  }

  private paths(config: VmConfig): VmPaths {
    const folder = this.store.folder(config.id);
    return { vmDir: folder.dir, runDir: join(this.options.run, 'vms', config.id), firmwareDir: folder.firmwareDir };
  }

  private instanceOf(record: VmRecord): QemuInstance {
    if (!record.instance) throw new VisorError('bug', 'no-instance', `VM "${record.name}" is ${record.state} but has no QEMU process.`);
    return record.instance;
  }

  private setState(record: VmRecord, state: VmState, reason: string | null): void {
    record.state = state;
    record.stateReason = reason;
    if (state === 'running' && !record.runningSince) record.runningSince = new Date().toISOString();
    this.events.emit('vm-state', { vmId: record.config.id, name: record.name, state, reason });
  }

  /** Takes a QEMU process into a record and watches for its end. */
  private adopt(record: VmRecord, instance: QemuInstance, state: VmState): void {
    void writeFile(this.runningMarker(record), '').catch(() => undefined);
    record.stoppedByHost = false;
    record.instance = instance;
    record.expectingExit = false;
    record.runningSince = null;
    this.setState(record, state, null);
    void instance.waitForExit().then(
      (exit) => this.onExit(record, instance, exit.reason),
      (error: unknown) => this.onExit(record, instance, asVisorError(error).message),
    );
  }

  private onExit(record: VmRecord, instance: QemuInstance, reason: string): void {
    if (record.instance !== instance || record.expectingExit) return;
    this.retire(record, 'off', reason);
  }

  private retire(record: VmRecord, state: VmState, reason: string | null): void {
    if (!record.stoppedByHost) void rm(this.runningMarker(record), { force: true });
    record.instance?.dispose();
    record.instance = null;
    record.expectingExit = false;
    record.runningSince = null;
    this.setState(record, state, reason);
  }
}

async function checkReadableFile(path: string, field: string, what: string): Promise<void> {
  if (!path.startsWith('/')) throw invalid(field, `${field} must be an absolute path: current value is "${path}".`);
  try {
    await access(path, constants.R_OK);
    if (!(await stat(path)).isFile()) throw new Error('not a file');
  } catch {
    throw invalid(field, `${field}: ${what} "${path}" does not exist or cannot be read.`, 'Check the path.');
  }
}

async function readSavedAt(folder: VmFolder): Promise<string | null> {
  try {
    await access(join(folder.stateDir, SAVED_STATE));
    const meta = JSON.parse(await readFile(join(folder.stateDir, SAVED_META), 'utf8')) as { savedAt?: string };
    return meta.savedAt ?? new Date(0).toISOString();
  } catch {
    return null;
  }
}
