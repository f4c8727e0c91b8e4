import type { z } from 'zod';
import {
  DaemonInfo,
  DeleteVmQuery,
  DiskConvertSpec,
  DiskList,
  VmDiskAddSpec,
  VmDiskParams,
  VmDvdSpec,
  VmMoveStorageSpec,
  DiskInfo,
  DiskNewSpec,
  DiskPathSpec,
  DiskQuery,
  DiskResizeSpec,
  ExecResult,
  ExecSpec,
  HostInfo,
  ImageList,
  Job,
  JobList,
  JobParams,
  OpenApiDocument,
  RefParams,
  ShutdownRequest,
  VmCreateSpec,
  VmList,
  VmUpdateSpec,
  VmView,
  VisorEvent,
} from './schemas.js';

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export interface ResponseSpec {
  description: string;
  /** JSON body schema; absent for no body. */
  schema?: z.ZodType;
  /** A non-JSON body (image/png). */
  contentType?: string;
}

/** One route of the public API: the daemon serves it, the OpenAPI document describes it. */
export interface RouteSpec {
  operationId: string;
  method: HttpMethod;
  /** OpenAPI form, prefix included: /v1/vms/{ref}. */
  path: string;
  summary: string;
  tag: 'daemon' | 'host' | 'images' | 'vms' | 'disks' | 'jobs' | 'events';
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** The body may be left out (actions whose options all have defaults). */
  bodyOptional?: boolean;
  /** Success responses; every route also answers errors as problem JSON. */
  responses: Record<number, ResponseSpec>;
  /** A WebSocket endpoint (the 101 response); `message` describes what flows. */
  websocket?: { message: z.ZodType | 'bytes' };
}

export const API_PREFIX = '/v1';

const jobAccepted = {
  200: { description: 'The job, finished within the wait the client asked for with `Prefer: wait=N` (RFC 7240).', schema: Job },
  202: { description: 'Accepted: the operation runs as a job; follow it at /v1/jobs/{id}.', schema: Job },
};
const vmView = { 200: { description: 'The VM after the change.', schema: VmView } };

const vmAction = (operationId: string, action: string, summary: string, async: boolean): RouteSpec => ({
  operationId,
  method: 'POST',
  path: `/v1/vms/{ref}/${action}`,
  summary,
  tag: 'vms',
  params: RefParams,
  responses: async ? jobAccepted : vmView,
});

const diskJob = (operationId: string, action: string, summary: string, body: z.ZodType): RouteSpec => ({
  operationId,
  method: 'POST',
  path: `/v1/disks/${action}`,
  summary,
  tag: 'disks',
  body,
  responses: jobAccepted,
});

export const ROUTES: readonly RouteSpec[] = [
  {
    operationId: 'getDaemon',
    method: 'GET',
    path: '/v1/daemon',
    summary: 'The daemon answering: version, pid, start time.',
    tag: 'daemon',
    responses: { 200: { description: 'The daemon.', schema: DaemonInfo } },
  },
  {
    operationId: 'getOpenApi',
    method: 'GET',
    path: '/v1/openapi.json',
    summary: 'This document.',
    tag: 'daemon',
    responses: { 200: { description: 'The OpenAPI 3.1 document.', schema: OpenApiDocument } },
  },
  {
    operationId: 'getHost',
    method: 'GET',
    path: '/v1/host',
    summary: 'Host facts: accelerator, processors, memory, QEMU.',
    tag: 'host',
    responses: { 200: { description: 'The host.', schema: HostInfo } },
  },
  {
    operationId: 'stopVmsForHost',
    method: 'POST',
    path: '/v1/host/stop-vms',
    summary: 'The host\'s shutdown step: each running VM\'s automatic stop action (save, shut down or turn off), all at once (a job answering HostStopResult[]).',
    tag: 'host',
    responses: jobAccepted,
  },
  {
    operationId: 'listImages',
    method: 'GET',
    path: '/v1/images',
    summary: 'The image library: what a VM can be created from.',
    tag: 'images',
    responses: { 200: { description: 'The images.', schema: ImageList } },
  },
  {
    operationId: 'listVms',
    method: 'GET',
    path: '/v1/vms',
    summary: 'Every VM.',
    tag: 'vms',
    responses: { 200: { description: 'The VMs.', schema: VmList } },
  },
  {
    operationId: 'createVm',
    method: 'POST',
    path: '/v1/vms',
    summary: 'Create a VM (a job: copying the image can take a while).',
    tag: 'vms',
    body: VmCreateSpec,
    responses: jobAccepted,
  },
  {
    operationId: 'getVm',
    method: 'GET',
    path: '/v1/vms/{ref}',
    summary: 'One VM.',
    tag: 'vms',
    params: RefParams,
    responses: { 200: { description: 'The VM.', schema: VmView } },
  },
  {
    operationId: 'updateVm',
    method: 'PATCH',
    path: '/v1/vms/{ref}',
    summary: 'Change a VM\'s settings; hardware changes need the VM off.',
    tag: 'vms',
    params: RefParams,
    body: VmUpdateSpec,
    responses: vmView,
  },
  {
    operationId: 'deleteVm',
    method: 'DELETE',
    path: '/v1/vms/{ref}',
    summary: 'Delete a VM and the disks created with it (force: turn it off first).',
    tag: 'vms',
    params: RefParams,
    query: DeleteVmQuery,
    responses: { 204: { description: 'Deleted.' } },
  },
  vmAction('startVm', 'start', 'Start a VM, or resume it from its saved state.', true),
  {
    ...vmAction('shutDownVm', 'shutdown', 'Shut a VM down through the guest (ACPI power button).', true),
    body: ShutdownRequest,
    bodyOptional: true,
  },
  vmAction('turnOffVm', 'turn-off', 'Turn a VM off at once (pulling the plug).', false),
  vmAction('saveVm', 'save', 'Save a VM\'s memory to disk and stop it.', true),
  vmAction('pauseVm', 'pause', 'Pause a running VM.', false),
  vmAction('resumeVm', 'resume', 'Resume a paused VM.', false),
  vmAction('restartVm', 'restart', 'Reset a running VM.', false),
  {
    operationId: 'execInVm',
    method: 'POST',
    path: '/v1/vms/{ref}/exec',
    summary: 'Run a command in the guest (through the guest agent) and return its output.',
    tag: 'vms',
    params: RefParams,
    body: ExecSpec,
    responses: { 200: { description: 'The command\'s exit code and output.', schema: ExecResult } },
  },
  {
    operationId: 'listVmDisks',
    method: 'GET',
    path: '/v1/vms/{ref}/disks',
    summary: 'The VM\'s disks: id, controller and slot, path, format.',
    tag: 'vms',
    params: RefParams,
    responses: { 200: { description: 'The disks.', schema: DiskList } },
  },
  {
    operationId: 'addVmDisk',
    method: 'POST',
    path: '/v1/vms/{ref}/disks',
    summary: 'Attach a disk (an existing file or device, or a new one); hot-added while running on SCSI or virtio.',
    tag: 'vms',
    params: RefParams,
    body: VmDiskAddSpec,
    responses: vmView,
  },
  {
    operationId: 'removeVmDisk',
    method: 'DELETE',
    path: '/v1/vms/{ref}/disks/{diskId}',
    summary: 'Detach a disk (hot-removed while running); the file is kept.',
    tag: 'vms',
    params: VmDiskParams,
    responses: vmView,
  },
  {
    operationId: 'setVmDvd',
    method: 'POST',
    path: '/v1/vms/{ref}/dvd',
    summary: 'Insert an ISO into the DVD drive, or eject it (`iso: null`); live while running.',
    tag: 'vms',
    params: RefParams,
    body: VmDvdSpec,
    responses: vmView,
  },
  {
    ...vmAction('moveVmStorage', 'move-storage', 'Move the VM\'s disks, or its whole folder, to another folder, live while it runs (a job with progress and cancel).', true),
    body: VmMoveStorageSpec,
  },
  {
    operationId: 'getVmScreenshot',
    method: 'GET',
    path: '/v1/vms/{ref}/screenshot',
    summary: 'The guest\'s screen as PNG.',
    tag: 'vms',
    params: RefParams,
    responses: { 200: { description: 'A PNG image.', contentType: 'image/png' } },
  },
  {
    operationId: 'connectVmSerial',
    method: 'GET',
    path: '/v1/vms/{ref}/serial',
    summary: 'WebSocket: the VM\'s serial console, raw bytes both ways (binary messages).',
    tag: 'vms',
    params: RefParams,
    responses: { 101: { description: 'Switching to the WebSocket protocol.' } },
    websocket: { message: 'bytes' },
  },
  {
    operationId: 'inspectDisk',
    method: 'GET',
    path: '/v1/disks/inspect',
    summary: 'A disk file\'s format, sizes, block size, parent chain and health.',
    tag: 'disks',
    query: DiskQuery,
    responses: { 200: { description: 'The disk.', schema: DiskInfo } },
  },
  diskJob('newDisk', 'new', 'Create a disk: vhdx (default, dynamic), vhd, qcow2 or raw; or a differencing child of `parent`.', DiskNewSpec),
  diskJob('convertDisk', 'convert', 'Copy a disk (its parent chain flattened) into a new standalone disk of a format.', DiskConvertSpec),
  diskJob('resizeDisk', 'resize', 'Change a disk\'s virtual size (VHDX also shrinks, over unused space).', DiskResizeSpec),
  diskJob('compactDisk', 'compact', 'Give back the space of blocks that hold only zeros.', DiskPathSpec),
  diskJob('mergeDisk', 'merge', 'Write a differencing disk into its parent, then delete it.', DiskPathSpec),
  {
    operationId: 'listJobs',
    method: 'GET',
    path: '/v1/jobs',
    summary: 'Running jobs and recently finished ones, newest first.',
    tag: 'jobs',
    responses: { 200: { description: 'The jobs.', schema: JobList } },
  },
  {
    operationId: 'getJob',
    method: 'GET',
    path: '/v1/jobs/{id}',
    summary: 'One job.',
    tag: 'jobs',
    params: JobParams,
    responses: { 200: { description: 'The job.', schema: Job } },
  },
  {
    operationId: 'cancelJob',
    method: 'DELETE',
    path: '/v1/jobs/{id}',
    summary: 'Cancel a job; it ends `cancelled` once the operation has let go.',
    tag: 'jobs',
    params: JobParams,
    responses: { 200: { description: 'The job, cancelled or being cancelled.', schema: Job } },
  },
  {
    operationId: 'streamEvents',
    method: 'GET',
    path: '/v1/events',
    summary: 'WebSocket: VM and job events, one JSON object per text message.',
    tag: 'events',
    responses: { 101: { description: 'Switching to the WebSocket protocol.' } },
    websocket: { message: VisorEvent },
  },
];
