import { z } from 'zod';
import {
  AutomaticStartAction,
  AutomaticStopAction,
  BootDevice,
  ControllerType,
  DiskFormat,
  NicModel,
  VmConfig,
} from './vm-config.js';
import { VmState } from './vm-state.js';

/**
 * What callers send to create or change a VM, and what they get back. Sizes are bytes here
 * (the CLI and UI parse "512M"); omitted fields take defaults in vms/.
 */
export const VmCreateSpec = z.strictObject({
  name: z.string(),
  /**
   * What the VM's first disk comes from: an image name from the library, or a template disk by
   * absolute path (a mounted share too) or network URL. The disk is a copy of it, or with
   * `differencing` a qcow2 child that reads the template and writes only its own changes.
   */
  image: z.string().optional(),
  differencing: z.boolean().optional(),
  /**
   * The folder the VM lives in (new or empty; a mounted share too): its configuration, disks and
   * saved state. Default $VISOR_HOME/vms/<id>.
   */
  location: z.string().refine((p) => p.startsWith('/'), { message: 'must be an absolute path' }).optional(),
  /** With no image: size of a new blank dynamic VHDX boot disk, in bytes. */
  diskSize: z.number().int().positive().optional(),
  diskFormat: DiskFormat.optional(),
  generation: z.union([z.literal(1), z.literal(2)]).optional(),
  secureBoot: z.boolean().optional(),
  processorCount: z.number().int().optional(),
  startupMemory: z.number().int().optional(),
  bootOrder: z.array(BootDevice).optional(),
  /** Where the boot disk sits; defaults by generation (1: ide, 2: scsi). */
  bootDiskController: ControllerType.optional(),
  dvdIso: z.string().nullable().optional(),
  networkAdapters: z
    .array(z.strictObject({ mac: z.string().optional(), model: NicModel.optional(), switchName: z.string().nullable().optional() }))
    .optional(),
  display: z.strictObject({ width: z.number().int(), height: z.number().int() }).optional(),
  automaticStartAction: AutomaticStartAction.optional(),
  automaticStopAction: AutomaticStopAction.optional(),
  notes: z.string().optional(),
});
export type VmCreateSpec = z.infer<typeof VmCreateSpec>;

/** A partial change to a VM's settings (`visor vm set`). Hardware changes need the VM off. */
export const VmUpdateSpec = z.strictObject({
  name: z.string().optional(),
  processorCount: z.number().int().optional(),
  startupMemory: z.number().int().optional(),
  bootOrder: z.array(BootDevice).optional(),
  dvdIso: z.string().nullable().optional(),
  display: z.strictObject({ width: z.number().int(), height: z.number().int() }).optional(),
  secureBoot: z.boolean().optional(),
  automaticStartAction: AutomaticStartAction.optional(),
  automaticStopAction: AutomaticStopAction.optional(),
  notes: z.string().optional(),
});
export type VmUpdateSpec = z.infer<typeof VmUpdateSpec>;

/** A VM as the API shows it: its configuration plus what it is doing now. */
export const VmView = z.object({
  config: VmConfig,
  state: VmState,
  /** Why the VM is in its state when that is news: "QEMU exited while the daemon was down". */
  stateReason: z.string().nullable(),
  pid: z.number().int().nullable(),
  /** When the guest last entered running, for uptime. */
  runningSince: z.string().nullable(),
  /** Seconds of guest time saved in the state file, when saved. */
  savedAt: z.string().nullable(),
  /** The folder the VM lives in: its configuration, disks created with it, saved state. */
  folder: z.string(),
});
export type VmView = z.infer<typeof VmView>;

/** What the host's shutdown step did to one VM: its automatic stop action and the outcome. */
export const HostStopResult = z.object({
  name: z.string(),
  action: AutomaticStopAction,
  /** The VM's state afterwards: saved or off, or still running when the action failed. */
  state: VmState,
  error: z.string().nullable(),
});
export type HostStopResult = z.infer<typeof HostStopResult>;

export const ExecSpec = z.strictObject({
  command: z.array(z.string()).min(1),
  /** Seconds to wait for the command before giving up (it keeps running in the guest). */
  timeoutSeconds: z.number().positive().max(3600).default(60),
  input: z.string().optional(),
});
export type ExecSpec = z.infer<typeof ExecSpec>;

export const ExecResult = z.object({ exitCode: z.number().int(), stdout: z.string(), stderr: z.string() });
export type ExecResult = z.infer<typeof ExecResult>;

export const ImageInfo = z.object({
  name: z.string(),
  description: z.string(),
  architecture: z.enum(['x86_64', 'i686']),
  format: DiskFormat,
  path: z.string(),
  size: z.number().int(),
  virtualSize: z.number().int(),
  generations: z.array(z.union([z.literal(1), z.literal(2)])),
  /** The line the guest prints on its serial port when booted. */
  readyLine: z.string().nullable(),
});
export type ImageInfo = z.infer<typeof ImageInfo>;

export { ControllerType };
