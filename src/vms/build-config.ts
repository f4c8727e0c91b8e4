import {
  CONTROLLER_LIMITS,
  DEFAULT_DISPLAY,
  MAX_MEMORY,
  MAX_PROCESSORS,
  MEMORY_ALIGNMENT,
  MIN_MEMORY,
  MiB,
  VM_CONFIG_VERSION,
  VisorError,
  VmConfig,
  checkName,
  formatSize,
  invalid,
  macFromBytes,
  normalizeMac,
  parseOrThrow,
} from '../core/index.js';
import type { DiskAttachment, VmConfig as VmConfigType, VmCreateSpec, VmUpdateSpec } from '../core/index.js';

/** What the host allows; from host/ at run time, literals in tests. */
export interface HostLimits {
  logicalCpus: number;
  totalMemory: number;
}

/** Memory the host keeps for itself when we judge what it "can back". */
export const HOST_MEMORY_RESERVE = 512 * MiB;
export const DEFAULT_STARTUP_MEMORY = 512 * MiB;

export interface BuildContext {
  id: string;
  now: Date;
  host: HostLimits;
  existing: readonly VmConfigType[];
  randomBytes: (count: number) => Uint8Array;
  /** The boot disk, when the VM gets one (from an image or a new blank disk). */
  bootDisk: Pick<DiskAttachment, 'path' | 'format' | 'backing'> | null;
  /** Generations the source image boots in; null when there is no image. */
  imageGenerations: readonly (1 | 2)[] | null;
  sourceImage: string | null;
  /** QEMU's major.minor version, to pin the machine type; null when unknown. */
  qemuVersion: string | null;
}

/** `pc-i440fx-10.0` / `pc-q35-10.0` for QEMU 10.0.x; null when the version is unknown. */
export function pinnedMachineType(generation: 1 | 2, qemuVersion: string | null): string | null {
  const match = /^(\d+)\.(\d+)/.exec(qemuVersion ?? '');
  if (!match) return null;
  return `${generation === 1 ? 'pc-i440fx' : 'pc-q35'}-${match[1]}.${match[2]}`;
}

/**
 * Turns a create request into a complete VmConfig: defaults filled, every value checked against
 * the product's and the host's limits, names and MACs unique on this host. Pure: the id, clock,
 * randomness and host facts come in through `ctx`.
 */
export function buildVmConfig(spec: VmCreateSpec, ctx: BuildContext): VmConfigType {
  const name = checkUniqueName(spec.name, ctx.existing);
  const generation = spec.generation ?? ctx.imageGenerations?.[0] ?? 1;
  if (ctx.imageGenerations && !ctx.imageGenerations.includes(generation)) {
    throw invalid(
      'generation',
      `generation ${generation} cannot boot image "${ctx.sourceImage}": it boots in generation ${ctx.imageGenerations.join(' or ')}.`,
      `Use --generation ${ctx.imageGenerations[0]}.`,
    );
  }
  if (spec.secureBoot && generation !== 2) {
    throw invalid('secureBoot', 'secureBoot needs a generation 2 VM: current generation is 1.', 'Use --generation 2.');
  }
  const bootController = spec.bootDiskController ?? (generation === 1 ? 'ide' : 'scsi');
  if (generation === 2 && bootController === 'ide') {
    throw invalid('bootDiskController', 'generation 2 VMs have no IDE controller.', 'Use scsi or virtio.');
  }
  const disks: DiskAttachment[] = ctx.bootDisk
    ? [{ id: 'disk0', controller: bootController, controllerNumber: 0, location: 0, readOnly: false, ...ctx.bootDisk }]
    : [];
  const dvdController: 'ide' | 'scsi' = generation === 1 ? 'ide' : 'scsi';
  const dvd =
    spec.dvdIso === undefined
      ? generation === 1
        ? { controller: dvdController, controllerNumber: 1, location: 0, iso: null }
        : null
      : { controller: dvdController, controllerNumber: generation === 1 ? 1 : 0, location: generation === 1 ? 0 : 1, iso: spec.dvdIso };

  const usedMacs = new Set(ctx.existing.flatMap((vm) => vm.networkAdapters.map((n) => n.mac)));
  const adapters = (spec.networkAdapters ?? [{}]).map((nic, index) => {
    const field = `networkAdapters.${index}.mac`;
    const mac = nic.mac === undefined ? freshMac(usedMacs, ctx.randomBytes) : normalizeMac(nic.mac, field);
    if (usedMacs.has(mac) && nic.mac !== undefined) {
      const owner = ctx.existing.find((vm) => vm.networkAdapters.some((n) => n.mac === mac));
      throw new VisorError('conflict', 'duplicate-mac', `MAC address ${mac} is already used by VM "${owner?.name ?? '?'}".`, {
        field,
        hint: 'Leave the MAC out and Visor picks a unique one.',
      });
    }
    usedMacs.add(mac);
    return { id: `nic${index}`, mac, model: nic.model ?? 'virtio', switchName: nic.switchName ?? null };
  });

  const candidate = {
    schemaVersion: VM_CONFIG_VERSION,
    id: ctx.id,
    name,
    generation,
    secureBoot: spec.secureBoot ?? false,
    machineType: pinnedMachineType(generation, ctx.qemuVersion),
    processors: { count: checkProcessorCount(spec.processorCount ?? 1, ctx.host) },
    memory: { startup: checkStartupMemory(spec.startupMemory ?? DEFAULT_STARTUP_MEMORY, ctx.host), dynamic: null },
    bootOrder: spec.bootOrder ?? ['disk', 'dvd', 'network'],
    disks,
    dvd,
    networkAdapters: adapters,
    display: checkDisplay(spec.display ?? DEFAULT_DISPLAY),
    automaticStartAction: spec.automaticStartAction ?? 'nothing',
    automaticStopAction: spec.automaticStopAction ?? 'save',
    notes: spec.notes ?? '',
    sourceImage: ctx.sourceImage,
    createdAt: ctx.now.toISOString(),
  };
  checkControllerSlots(candidate.disks, candidate.dvd);
  return parseOrThrow(VmConfig, candidate);
}

/** Applies `visor vm set` changes; the result is checked as a whole. */
export function applyVmUpdate(
  config: VmConfigType,
  spec: VmUpdateSpec,
  ctx: { host: HostLimits; existing: readonly VmConfigType[] },
): VmConfigType {
  const others = ctx.existing.filter((vm) => vm.id !== config.id);
  const next: VmConfigType = structuredClone(config);
  if (spec.name !== undefined) next.name = checkUniqueName(spec.name, others);
  if (spec.processorCount !== undefined) next.processors.count = checkProcessorCount(spec.processorCount, ctx.host);
  if (spec.startupMemory !== undefined) next.memory.startup = checkStartupMemory(spec.startupMemory, ctx.host);
  if (spec.bootOrder !== undefined) next.bootOrder = spec.bootOrder;
  if (spec.display !== undefined) next.display = checkDisplay(spec.display);
  if (spec.secureBoot !== undefined) {
    if (spec.secureBoot && next.generation !== 2) {
      throw invalid('secureBoot', 'secureBoot needs a generation 2 VM: current generation is 1.');
    }
    next.secureBoot = spec.secureBoot;
  }
  if (spec.dvdIso !== undefined) {
    if (!next.dvd) {
      next.dvd = next.generation === 1
        ? { controller: 'ide', controllerNumber: 1, location: 0, iso: spec.dvdIso }
        : { controller: 'scsi', controllerNumber: 0, location: 1, iso: spec.dvdIso };
    } else next.dvd.iso = spec.dvdIso;
  }
  if (spec.automaticStartAction !== undefined) next.automaticStartAction = spec.automaticStartAction;
  if (spec.automaticStopAction !== undefined) next.automaticStopAction = spec.automaticStopAction;
  if (spec.notes !== undefined) next.notes = spec.notes;
  checkControllerSlots(next.disks, next.dvd);
  return parseOrThrow(VmConfig, next);
}

function checkUniqueName(name: string, existing: readonly VmConfigType[]): string {
  checkName(name, 'name');
  if (existing.some((vm) => vm.name.toLowerCase() === name.toLowerCase())) {
    throw new VisorError('conflict', 'duplicate-name', `A VM named "${name}" already exists.`, {
      field: 'name',
      hint: 'Choose another name, or delete the other VM first.',
    });
  }
  return name;
}

export function maxProcessors(host: HostLimits): number {
  return Math.min(MAX_PROCESSORS, Math.max(1, host.logicalCpus));
}

function checkProcessorCount(count: number, host: HostLimits): number {
  const max = maxProcessors(host);
  if (!Number.isInteger(count) || count < 1 || count > max) {
    throw invalid(
      'processorCount',
      `processorCount must be a whole number from 1 to ${max}: current value is ${count}.`,
      count > max && max < MAX_PROCESSORS
        ? `This host has ${host.logicalCpus} logical processors; a VM can have at most that many.`
        : undefined,
    );
  }
  return count;
}

export function maxStartupMemory(host: HostLimits): number {
  const backable = Math.max(MIN_MEMORY, host.totalMemory - HOST_MEMORY_RESERVE);
  return Math.min(MAX_MEMORY, Math.floor(backable / MEMORY_ALIGNMENT) * MEMORY_ALIGNMENT);
}

function checkStartupMemory(bytes: number, host: HostLimits): number {
  const max = maxStartupMemory(host);
  if (!Number.isSafeInteger(bytes) || bytes < MIN_MEMORY || bytes > max) {
    throw invalid(
      'startupMemory',
      `startupMemory must be from ${formatSize(MIN_MEMORY)} to ${formatSize(max)}: current value is ${formatSize(bytes)} (${bytes} bytes).`,
      bytes > max ? `This host has ${formatSize(host.totalMemory)} of memory and keeps ${formatSize(HOST_MEMORY_RESERVE)} for itself.` : undefined,
    );
  }
  if (bytes % MEMORY_ALIGNMENT !== 0) {
    throw invalid('startupMemory', `startupMemory must be a multiple of 2M: current value is ${bytes} bytes.`);
  }
  return bytes;
}

function checkDisplay(display: { width: number; height: number }): { width: number; height: number } {
  const { width, height } = display;
  if (!(width >= 640 && width <= 1600 && height >= 480 && height <= 1200)) {
    throw invalid('display', `display must be from 640x480 to 1600x1200: current value is ${width}x${height}.`);
  }
  return { width, height };
}

function checkControllerSlots(disks: readonly DiskAttachment[], dvd: VmConfigType['dvd']): void {
  const seen = new Map<string, string>();
  const slots = [...disks.map((d) => ({ ...d, what: `disk ${d.id}` })), ...(dvd ? [{ ...dvd, what: 'the DVD drive' }] : [])];
  for (const slot of slots) {
    const limits = CONTROLLER_LIMITS[slot.controller];
    if (slot.controllerNumber >= limits.controllers || slot.location >= limits.locations) {
      throw invalid(
        'disks',
        `${slot.what} sits at ${slot.controller} ${slot.controllerNumber}:${slot.location}, outside the controller's ${limits.controllers}x${limits.locations} slots.`,
      );
    }
    const key = slot.controller === 'virtio' ? `virtio:${slot.what}` : `${slot.controller}:${slot.controllerNumber}:${slot.location}`;
    const other = seen.get(key);
    if (other) throw invalid('disks', `${slot.what} and ${other} both sit at ${slot.controller} ${slot.controllerNumber}:${slot.location}.`);
    seen.set(key, slot.what);
  }
}

function freshMac(used: Set<string>, randomBytes: (n: number) => Uint8Array): string {
  for (let attempt = 0; attempt < 1000; attempt += 1) {
    const mac = macFromBytes(randomBytes(3));
    if (!used.has(mac)) return mac;
  }
  throw new VisorError('unavailable', 'mac-pool-exhausted', 'Could not find a free MAC address.');
}
