import { z } from 'zod';
import { DiskFormat } from './vm-config.js';

/**
 * What callers send to the disk operations (`/v1/disks/...`, `visor disk ...`) and what
 * `inspect` answers. Paths are absolute host paths; sizes are bytes.
 */

const absolutePath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), { message: 'must be an absolute path' });

/** A new empty disk, or a differencing child of `parent` (vhdx, vhd, qcow2). */
export const DiskNewSpec = z.strictObject({
  path: absolutePath,
  format: DiskFormat.default('vhdx'),
  /** Bytes; required unless `parent` is given (a child has its parent's size). */
  size: z.number().int().positive().optional(),
  type: z.enum(['fixed', 'dynamic']).default('dynamic'),
  parent: absolutePath.optional(),
});
export type DiskNewSpec = z.infer<typeof DiskNewSpec>;
export type DiskNewInput = z.input<typeof DiskNewSpec>;

/** Copy `path` (and its parent chain, flattened) into a new standalone disk at `destination`. */
export const DiskConvertSpec = z.strictObject({
  path: absolutePath,
  destination: absolutePath,
  format: DiskFormat,
});
export type DiskConvertSpec = z.infer<typeof DiskConvertSpec>;

export const DiskResizeSpec = z.strictObject({
  path: absolutePath,
  size: z.number().int().positive(),
});
export type DiskResizeSpec = z.infer<typeof DiskResizeSpec>;

/** compact and merge name only the disk (merge: the child, merged into its parent). */
export const DiskPathSpec = z.strictObject({ path: absolutePath });
export type DiskPathSpec = z.infer<typeof DiskPathSpec>;

export const DiskHealth = z.object({
  ok: z.boolean(),
  /** What the validator (our VHDX/VHD libraries, `qemu-img check`) found; empty when ok. */
  findings: z.array(z.string()),
});

export const DiskInfo = z.object({
  path: z.string(),
  format: DiskFormat,
  /** fixed | dynamic | differencing; null where the format has no such notion (raw is fixed). */
  type: z.enum(['fixed', 'dynamic', 'differencing']).nullable(),
  /** What the guest sees, in bytes; null when the file could not be read. */
  virtualSize: z.number().int().nullable(),
  /** Bytes allocated on the host. */
  physicalSize: z.number().int(),
  /** The format's allocation unit (VHDX/VHD block, qcow2 cluster); null for raw. */
  blockSize: z.number().int().nullable(),
  /** The parents, nearest first. */
  parents: z.array(z.object({ path: z.string(), format: DiskFormat })),
  health: DiskHealth,
});
export type DiskInfo = z.infer<typeof DiskInfo>;

/** Attach a disk to a VM: an existing file or device (`path`), or a new empty disk (`new`). */
export const VmDiskAddSpec = z
  .strictObject({
    path: absolutePath.optional(),
    new: z.strictObject({ size: z.number().int().positive(), format: DiskFormat.default('vhdx') }).optional(),
    controller: z.enum(['ide', 'scsi', 'virtio']).default('scsi'),
    /** The first free slot when left out. */
    controllerNumber: z.number().int().min(0).max(3).optional(),
    location: z.number().int().min(0).max(63).optional(),
    /** `path` is a host block device given whole to the VM. */
    passthrough: z.boolean().default(false),
    readOnly: z.boolean().default(false),
  })
  .refine((s) => (s.path === undefined) !== (s.new === undefined), { message: 'give either path or new', path: ['path'] });
export type VmDiskAddSpec = z.infer<typeof VmDiskAddSpec>;
export type VmDiskAddInput = z.input<typeof VmDiskAddSpec>;

/** Insert an ISO into the VM's DVD drive, or eject (null). */
export const VmDvdSpec = z.strictObject({ iso: absolutePath.nullable() });
export type VmDvdSpec = z.infer<typeof VmDvdSpec>;

/** Move a VM's storage to another folder (live while it runs). */
export const VmMoveStorageSpec = z.strictObject({
  destination: absolutePath,
  /** Move only the disks (the configuration and state stay in the VM's home folder). */
  disksOnly: z.boolean().default(false),
  /** Convert the disks to this format on the way (default: each keeps its own). */
  format: DiskFormat.optional(),
});
export type VmMoveStorageSpec = z.infer<typeof VmMoveStorageSpec>;
export type VmMoveStorageInput = z.input<typeof VmMoveStorageSpec>;
