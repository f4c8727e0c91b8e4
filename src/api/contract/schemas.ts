import { z } from 'zod';
import {
  DiskConvertSpec,
  DiskInfo,
  DiskNewSpec,
  DiskPathSpec,
  DiskResizeSpec,
  DiskAttachment,
  VmDiskAddSpec,
  VmDvdSpec,
  VmMoveStorageSpec,
  ExecResult,
  ExecSpec,
  HostFacts,
  ImageInfo,
  VmCreateSpec,
  VmState,
  VmUpdateSpec,
  VmView,
} from '../../core/index.js';

/**
 * The wire contract's schemas, in one place. Core's schemas are reused as they are; what only
 * the API has (jobs, problems, events, request bodies of actions) is defined here. The OpenAPI
 * document (openapi.ts) and the daemon's request parsing both come from these.
 */
export { DiskAttachment, VmDiskAddSpec, VmDvdSpec, VmMoveStorageSpec, DiskConvertSpec, DiskInfo, DiskNewSpec, DiskPathSpec, DiskResizeSpec, ExecResult, ExecSpec, ImageInfo, VmCreateSpec, VmUpdateSpec, VmView };

export const ErrorKind = z.enum(['invalid', 'not-found', 'conflict', 'unavailable', 'cancelled', 'failed', 'bug']);

export const SerializedError = z.object({
  kind: ErrorKind,
  code: z.string(),
  message: z.string(),
  field: z.string().optional(),
  hint: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});

/** RFC 9457 problem details, with Visor's error fields as extension members. */
export const Problem = z.object({
  type: z.string().describe('A URN naming the error code: urn:visor:problem:CODE.'),
  title: z.string().describe('A short summary of the kind of error.'),
  status: z.number().int(),
  detail: z.string().describe('What went wrong, quoting the offending value.'),
  instance: z.string().optional(),
  kind: ErrorKind,
  code: z.string(),
  field: z.string().optional(),
  hint: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type Problem = z.infer<typeof Problem>;

export const JobState = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);

export const Job = z.object({
  id: z.string(),
  kind: z.string().describe('The operation: vm-create, vm-start, vm-shutdown, vm-save, disk-new, disk-convert, disk-resize, disk-compact, disk-merge.'),
  target: z.string().describe('What the job works on: a VM name, or a disk\'s path.'),
  state: JobState,
  progress: z.number().min(0).max(1),
  message: z.string().nullable(),
  error: SerializedError.nullable(),
  result: z.unknown().describe('The operation\'s result once succeeded (a VmView for VM jobs, a DiskInfo for disk jobs), else null.'),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});

/** Host facts as src/host reports them (core/host-facts.ts; host/ is checked against it). */
export const HostInfo = HostFacts;

export const DaemonInfo = z.object({
  version: z.string(),
  pid: z.number().int(),
  startedAt: z.string(),
});

/** GET /v1/openapi.json: an OpenAPI 3.1 document (described loosely: it describes itself). */
export const OpenApiDocument = z.looseObject({ openapi: z.string(), info: z.object({ title: z.string(), version: z.string() }).loose(), paths: z.record(z.string(), z.unknown()) });

export const VmList = z.array(VmView);
export const ImageList = z.array(ImageInfo);
export const JobList = z.array(Job);

export const ShutdownRequest = z.strictObject({
  /** Seconds to wait for the guest to power off after the ACPI power button. */
  timeoutSeconds: z.number().positive().max(3600).default(60),
  /** Turn the VM off if the guest has not shut down in time. */
  force: z.boolean().default(false),
});
export type ShutdownRequest = z.infer<typeof ShutdownRequest>;

export const RefParams = z.strictObject({ ref: z.string().min(1).describe('A VM name or id.') });
export const DiskQuery = z.strictObject({ path: z.string().min(1).describe('An absolute path of a disk on the host.') });
export const DiskList = z.array(DiskAttachment);
export const VmDiskParams = z.strictObject({ ref: z.string().min(1).describe('A VM name or id.'), diskId: z.string().min(1).describe('The disk\'s id in the VM (disk0, disk1, ...).') });
export const JobParams = z.strictObject({ id: z.string().min(1) });
export const DeleteVmQuery = z.strictObject({
  force: z.enum(['true', 'false']).default('false').describe('Turn the VM off first if it is running.'),
});

const vmEvent = { vmId: z.string(), name: z.string(), at: z.string() };

/** One message on the /v1/events WebSocket (one JSON object per message). */
export const VisorEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('vm-state'), ...vmEvent, state: VmState, reason: z.string().nullable() }),
  z.object({ type: z.literal('vm-created'), ...vmEvent }),
  z.object({ type: z.literal('vm-updated'), ...vmEvent }),
  z.object({ type: z.literal('vm-deleted'), ...vmEvent }),
  z.object({ type: z.literal('job-state'), at: z.string(), job: Job }),
  z.object({ type: z.literal('job-progress'), at: z.string(), job: Job }),
]);
export type VisorEvent = z.infer<typeof VisorEvent>;

export type SerializedErrorWire = z.infer<typeof SerializedError>;
export type Job = z.infer<typeof Job>;
export type JobState = z.infer<typeof JobState>;
export type HostInfo = z.infer<typeof HostInfo>;
export type DaemonInfo = z.infer<typeof DaemonInfo>;
export type ShutdownRequestInput = z.input<typeof ShutdownRequest>;
