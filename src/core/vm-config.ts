import { z } from 'zod';
import { GiB, MiB } from './units.js';

/**
 * The virtual machine as stored in vm.json and exchanged over the API. Hyper-V's vocabulary
 * where it has one: generation, startupMemory, automaticStartAction. Limits here are the
 * product's; limits that depend on the host (CPUs, memory) are checked in vms/.
 */
export const VM_CONFIG_VERSION = 1;

export const MAX_PROCESSORS = 32;
export const MIN_MEMORY = 32 * MiB;
export const MAX_MEMORY = 512 * GiB;
/** QEMU and guests want memory in whole MiB; Hyper-V asks for multiples of 2 MiB. */
export const MEMORY_ALIGNMENT = 2 * MiB;

export const ControllerType = z.enum(['ide', 'scsi', 'virtio']);
export type ControllerType = z.infer<typeof ControllerType>;

export const DiskFormat = z.enum(['vhdx', 'vhd', 'qcow2', 'raw']);
export type DiskFormat = z.infer<typeof DiskFormat>;

/** IDE: 2 channels x 2 devices; SCSI: 4 controllers x 64 LUNs; virtio: one device each. */
export const CONTROLLER_LIMITS = {
  ide: { controllers: 2, locations: 2 },
  scsi: { controllers: 4, locations: 64 },
  virtio: { controllers: 1, locations: 64 },
} as const satisfies Record<ControllerType, { controllers: number; locations: number }>;

const absolutePath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), { message: 'must be an absolute path' });

/** Network disks QEMU's block layer opens itself (qemu-block-extra). */
export const NETWORK_DISK_SCHEMES = ['nfs', 'iscsi', 'nbd', 'nbd+unix', 'ssh'] as const;
const diskLocation = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/') || NETWORK_DISK_SCHEMES.some((scheme) => p.startsWith(`${scheme}://`)), {
    message: `must be an absolute path or a ${NETWORK_DISK_SCHEMES.join('/')} URL`,
  });

/** The parent a differencing disk reads unwritten blocks from (a template; never written). */
export const DiskBacking = z.strictObject({
  path: diskLocation,
  format: DiskFormat,
});
export type DiskBacking = z.infer<typeof DiskBacking>;

export const DiskAttachment = z.strictObject({
  id: z.string().min(1),
  controller: ControllerType,
  controllerNumber: z.number().int().min(0).max(3),
  location: z.number().int().min(0).max(63),
  /** A file, a host block device (pass-through), or a network disk URL. */
  path: diskLocation,
  format: DiskFormat,
  readOnly: z.boolean().default(false),
  /**
   * Set when the disk is a qcow2 differencing child of a template (`vm create --differencing`):
   * the file's header names the parent too; this copy tells the engine where the chain must be
   * served without opening the file. A storage move makes the disk standalone and clears it.
   */
  backing: DiskBacking.optional(),
});
export type DiskAttachment = z.infer<typeof DiskAttachment>;

export const DvdDrive = z.strictObject({
  controller: z.enum(['ide', 'scsi']),
  controllerNumber: z.number().int().min(0).max(3),
  location: z.number().int().min(0).max(63),
  /** The inserted ISO, or null for an empty drive. */
  iso: absolutePath.nullable(),
});
export type DvdDrive = z.infer<typeof DvdDrive>;

export const NicModel = z.enum(['virtio', 'e1000']);
export const NetworkAdapter = z.strictObject({
  id: z.string().min(1),
  mac: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'must be a MAC like 52:54:00:12:34:56'),
  model: NicModel.default('virtio'),
  /** The virtual switch this adapter plugs into; null is "Not connected". */
  switchName: z.string().nullable().default(null),
});
export type NetworkAdapter = z.infer<typeof NetworkAdapter>;

export const DynamicMemory = z.strictObject({
  enabled: z.boolean().default(false),
  minimum: z.number().int().positive(),
  maximum: z.number().int().positive(),
  /** Percent of committed memory kept free as a buffer (Hyper-V: 5-2000, default 20). */
  buffer: z.number().int().min(5).max(2000).default(20),
  /** Priority when memory is short (Hyper-V: 0-10000, default 5000). */
  weight: z.number().int().min(0).max(10000).default(5000),
});
export type DynamicMemory = z.infer<typeof DynamicMemory>;

export const Memory = z.strictObject({
  startup: z
    .number()
    .int()
    .min(MIN_MEMORY, `must be at least ${MIN_MEMORY / MiB} MiB`)
    .max(MAX_MEMORY, 'must be at most 512 GiB')
    .refine((n) => n % MEMORY_ALIGNMENT === 0, { message: 'must be a multiple of 2 MiB' }),
  /** Reserved for the dynamic memory issue; validated but not acted on yet. */
  dynamic: DynamicMemory.nullable().default(null),
});

export const BootDevice = z.enum(['disk', 'dvd', 'network']);
export type BootDevice = z.infer<typeof BootDevice>;

export const Display = z.strictObject({
  width: z.number().int().min(640).max(1600, 'must be at most 1600 (the console goes up to 1600x1200)'),
  height: z.number().int().min(480).max(1200, 'must be at most 1200 (the console goes up to 1600x1200)'),
});

export const AutomaticStartAction = z.enum(['nothing', 'start-if-running', 'start']);
export const AutomaticStopAction = z.enum(['save', 'turn-off', 'shut-down']);

export const VmConfig = z.strictObject({
  schemaVersion: z.literal(VM_CONFIG_VERSION),
  id: z.uuid(),
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be 1-63 letters, digits, ".", "_" or "-"'),
  /** 1: BIOS (SeaBIOS, i440fx, IDE boot). 2: UEFI (OVMF, q35, SCSI boot). */
  generation: z.union([z.literal(1), z.literal(2)]),
  secureBoot: z.boolean().default(false),
  /**
   * QEMU's versioned machine type, pinned when the VM is created (pc-i440fx-10.0, pc-q35-10.0):
   * the unversioned aliases move with each QEMU release, and a saved state only restores into
   * the machine it was saved from. null: the alias for the generation.
   */
  machineType: z.string().regex(/^pc-(i440fx|q35)-\d+\.\d+$/, 'must be a versioned machine type like pc-q35-10.0').nullable().default(null),
  processors: z.strictObject({
    count: z.number().int().min(1).max(MAX_PROCESSORS, `must be at most ${MAX_PROCESSORS}`),
  }),
  memory: Memory,
  bootOrder: z.array(BootDevice).min(1).max(3),
  disks: z.array(DiskAttachment).max(260),
  dvd: DvdDrive.nullable(),
  networkAdapters: z.array(NetworkAdapter).max(8),
  display: Display,
  automaticStartAction: AutomaticStartAction.default('nothing'),
  automaticStopAction: AutomaticStopAction.default('save'),
  notes: z.string().max(4096).default(''),
  /** The image the VM was created from, for people; nothing depends on it. */
  sourceImage: z.string().nullable().default(null),
  createdAt: z.iso.datetime(),
});
export type VmConfig = z.infer<typeof VmConfig>;

export const DEFAULT_DISPLAY = { width: 1024, height: 768 } as const;
