import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import type { WebSocket } from 'ws';
import type * as WsModule from 'ws';
// Imported past core's index on purpose: core/index.js loads zod (~55 ms), the CLI must not.
import { VisorError } from '../core/errors.js';
import type {
  DiskAttachment,
  VmDiskAddInput,
  VmMoveStorageInput,
  DiskConvertSpec,
  DiskInfo,
  DiskNewInput,
  DiskPathSpec,
  DiskResizeSpec,
  ExecResult,
  ExecSpec,
  HostStopResult,
  ImageInfo,
  VmCreateSpec,
  VmUpdateSpec,
  VmView,
} from '../core/index.js';
import type { DaemonInfo, HostInfo, Job, ShutdownRequestInput, VisorEvent } from './contract/schemas.js';
import { problemToError } from './problem.js';

export interface VisorClientOptions {
  /** The daemon's unix socket ($VISOR_RUN/visord.sock). */
  socketPath?: string;
  /** Or TCP: http://127.0.0.1:7380, with `token`. */
  url?: string;
  token?: string;
  /**
   * Seconds a job route may hold its answer until the job ends (`Prefer: wait=N`): a quick job
   * then comes back finished, with no event stream to open. 0 turns it off. Default 1.
   */
  preferWaitSeconds?: number;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
}

export interface WaitOptions {
  /** Called on every progress or state change of the job. */
  onUpdate?: (job: Job) => void;
  signal?: AbortSignal;
}

export interface Subscription {
  close(): void;
  /** Settles when the stream ends (closed by either side). */
  readonly closed: Promise<void>;
}

/** The result of a VM job. */
export type VmJob = Job & { result: VmView | null };

/** The result of a disk job: the disk after the operation (for merge: the parent). */
export type DiskJob = Job & { result: DiskInfo | null };

const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

/**
 * The typed client of the Visor API, over the unix socket or TCP with a bearer token. Errors
 * come back as the VisorErrors the daemon raised. Light on purpose: node:http only, and `ws`
 * loaded when a WebSocket is first needed.
 */
export class VisorClient {
  private readonly socketPath: string | undefined;
  private readonly base: URL | undefined;
  private readonly token: string | undefined;
  private readonly preferWaitSeconds: number;

  constructor(options: VisorClientOptions) {
    if (!options.socketPath && !options.url) throw new VisorError('bug', 'client-options', 'VisorClient needs socketPath or url.');
    this.socketPath = options.socketPath;
    this.base = options.url ? new URL(options.url) : undefined;
    this.token = options.token;
    this.preferWaitSeconds = options.preferWaitSeconds ?? 1;
  }

  /** Where this client connects, for messages. */
  get endpoint(): string {
    return this.socketPath ?? this.base!.origin;
  }

  // ---- daemon, host, images

  daemon(): Promise<DaemonInfo> {
    return this.json('GET', '/v1/daemon');
  }
  host(): Promise<HostInfo> {
    return this.json('GET', '/v1/host');
  }
  /** The host's shutdown step: every running VM's automatic stop action (a job). */
  stopVmsForHost(): Promise<Job & { result: HostStopResult[] | null }> {
    return this.json('POST', '/v1/host/stop-vms');
  }
  images(): Promise<ImageInfo[]> {
    return this.json('GET', '/v1/images');
  }
  openApi(): Promise<Record<string, unknown>> {
    return this.json('GET', '/v1/openapi.json');
  }

  // ---- VMs

  listVms(): Promise<VmView[]> {
    return this.json('GET', '/v1/vms');
  }
  getVm(ref: string): Promise<VmView> {
    return this.json('GET', vmPath(ref));
  }
  /** A job whose result is the new VM. */
  createVm(spec: VmCreateSpec): Promise<VmJob> {
    return this.json('POST', '/v1/vms', { body: spec });
  }
  updateVm(ref: string, spec: VmUpdateSpec): Promise<VmView> {
    return this.json('PATCH', vmPath(ref), { body: spec });
  }
  async deleteVm(ref: string, options: { force?: boolean } = {}): Promise<void> {
    await this.send('DELETE', `${vmPath(ref)}${options.force ? '?force=true' : ''}`);
  }
  startVm(ref: string): Promise<VmJob> {
    return this.json('POST', `${vmPath(ref)}/start`);
  }
  shutDownVm(ref: string, options: ShutdownRequestInput = {}): Promise<VmJob> {
    return this.json('POST', `${vmPath(ref)}/shutdown`, { body: options });
  }
  saveVm(ref: string): Promise<VmJob> {
    return this.json('POST', `${vmPath(ref)}/save`);
  }
  turnOffVm(ref: string): Promise<VmView> {
    return this.json('POST', `${vmPath(ref)}/turn-off`);
  }
  pauseVm(ref: string): Promise<VmView> {
    return this.json('POST', `${vmPath(ref)}/pause`);
  }
  resumeVm(ref: string): Promise<VmView> {
    return this.json('POST', `${vmPath(ref)}/resume`);
  }
  restartVm(ref: string): Promise<VmView> {
    return this.json('POST', `${vmPath(ref)}/restart`);
  }
  exec(ref: string, spec: Partial<ExecSpec> & Pick<ExecSpec, 'command'>, signal?: AbortSignal): Promise<ExecResult> {
    return this.json('POST', `${vmPath(ref)}/exec`, { body: spec, signal });
  }
  /** A job whose result is the VM, its disks at their new paths. */
  moveVmStorage(ref: string, spec: VmMoveStorageInput): Promise<VmJob> {
    return this.json('POST', `${vmPath(ref)}/move-storage`, { body: spec });
  }
  listVmDisks(ref: string): Promise<DiskAttachment[]> {
    return this.json('GET', `${vmPath(ref)}/disks`);
  }
  addVmDisk(ref: string, spec: VmDiskAddInput): Promise<VmView> {
    return this.json('POST', `${vmPath(ref)}/disks`, { body: spec });
  }
  removeVmDisk(ref: string, diskId: string): Promise<VmView> {
    return this.json('DELETE', `${vmPath(ref)}/disks/${encodeURIComponent(diskId)}`);
  }
  /** Inserts `iso`, or ejects with null. */
  setVmDvd(ref: string, iso: string | null): Promise<VmView> {
    return this.json('POST', `${vmPath(ref)}/dvd`, { body: { iso } });
  }
  async screenshot(ref: string): Promise<Buffer> {
    return (await this.send('GET', `${vmPath(ref)}/screenshot`)).body;
  }
  /** The serial console as a WebSocket of raw bytes. */
  openSerial(ref: string): Promise<WebSocket> {
    return this.webSocket(`${vmPath(ref)}/serial`);
  }

  // ---- disks (files at rest)

  inspectDisk(path: string): Promise<DiskInfo> {
    return this.json('GET', `/v1/disks/inspect?path=${encodeURIComponent(path)}`);
  }
  newDisk(spec: DiskNewInput): Promise<DiskJob> {
    return this.json('POST', '/v1/disks/new', { body: spec });
  }
  convertDisk(spec: DiskConvertSpec): Promise<DiskJob> {
    return this.json('POST', '/v1/disks/convert', { body: spec });
  }
  resizeDisk(spec: DiskResizeSpec): Promise<DiskJob> {
    return this.json('POST', '/v1/disks/resize', { body: spec });
  }
  compactDisk(spec: DiskPathSpec): Promise<DiskJob> {
    return this.json('POST', '/v1/disks/compact', { body: spec });
  }
  mergeDisk(spec: DiskPathSpec): Promise<DiskJob> {
    return this.json('POST', '/v1/disks/merge', { body: spec });
  }

  // ---- jobs

  listJobs(): Promise<Job[]> {
    return this.json('GET', '/v1/jobs');
  }
  getJob(id: string): Promise<Job> {
    return this.json('GET', `/v1/jobs/${encodeURIComponent(id)}`);
  }
  cancelJob(id: string): Promise<Job> {
    return this.json('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /**
   * Follows a job on the event stream until it finishes, and answers the finished job (whatever
   * its outcome; see `jobResult` to turn a failure into its error).
   */
  async waitForJob<J extends Job>(job: J | string, options: WaitOptions = {}): Promise<J> {
    const id = typeof job === 'string' ? job : job.id;
    // A job that came back finished (Prefer: wait) needs no event stream.
    if (typeof job !== 'string' && FINISHED.has(job.state)) {
      options.onUpdate?.(job);
      return job;
    }
    let settle: (job: J) => void = () => undefined;
    let fail: (error: unknown) => void = () => undefined;
    const finished = new Promise<J>((resolve, reject) => {
      settle = resolve;
      fail = reject;
    });
    let done = false;
    const seen = (update: Job): void => {
      if (update.id !== id || done) return;
      options.onUpdate?.(update);
      if (FINISHED.has(update.state)) {
        done = true;
        settle(update as J);
      }
    };
    const subscription = await this.subscribe((event) => {
      if (event.type === 'job-state' || event.type === 'job-progress') seen(event.job);
    });
    const onAbort = (): void => fail(options.signal?.reason ?? new VisorError('cancelled', 'cancelled', 'Waiting was cancelled.'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    // The stream is open: whatever happens from now on reaches us; read where the job is now.
    void subscription.closed.then(async () => {
      if (done) return;
      try {
        seen(await this.getJob(id));
        fail(new VisorError('unavailable', 'daemon-gone', 'The daemon closed the event stream before the job finished.', {
          hint: `Check the job with "visor job show ${id}".`,
        }));
      } catch (error) {
        fail(error);
      }
    });
    try {
      seen(await this.getJob(id));
      return await finished;
    } finally {
      done = true;
      options.signal?.removeEventListener('abort', onAbort);
      subscription.close();
    }
  }

  /** Subscribes to the event stream; `listener` gets every event until `close()`. */
  async subscribe(listener: (event: VisorEvent) => void): Promise<Subscription> {
    const socket = await this.webSocket('/v1/events');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      try {
        listener(JSON.parse(String(data)) as VisorEvent);
      } catch {
        // A malformed message is the daemon's bug; skip it rather than kill the caller.
      }
    });
    socket.on('error', () => undefined);
    return { close: () => socket.close(), closed };
  }

  // ---- transport

  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.send(method, path, options);
    if (response.status === 204 || response.body.length === 0) return undefined as T;
    return JSON.parse(response.body.toString('utf8')) as T;
  }

  /** One request; a problem response is thrown as its VisorError. */
  send(method: string, path: string, options: RequestOptions = {}): Promise<RawResponse> {
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (method === 'POST' && this.preferWaitSeconds > 0) headers.prefer = `wait=${this.preferWaitSeconds}`;
    return new Promise<RawResponse>((resolve, reject) => {
      const req = httpRequest(
        this.socketPath
          ? { socketPath: this.socketPath, path, method, headers, signal: options.signal }
          : { host: this.base!.hostname, port: this.base!.port || 80, path, method, headers, signal: options.signal },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const body = Buffer.concat(chunks);
            const status = res.statusCode ?? 0;
            if (status >= 400) {
              let problem: unknown;
              try {
                problem = JSON.parse(body.toString('utf8'));
              } catch {
                problem = { detail: body.toString('utf8').trim() || undefined };
              }
              reject(problemToError(problem, status));
              return;
            }
            resolve({ status, headers: res.headers, body });
          });
        },
      );
      req.on('error', (error) => reject(this.transportError(error)));
      req.end(payload);
    });
  }

  private async webSocket(path: string): Promise<WebSocket> {
    // ws is CommonJS: require() skips the ESM loader's CJS export scan.
    const { WebSocket } = createRequire(import.meta.url)('ws') as typeof WsModule;
    const address = this.socketPath ? `ws+unix://${this.socketPath}:${path}` : `${this.base!.origin.replace(/^http/, 'ws')}${path}`;
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const socket = new WebSocket(address, { headers });
    return new Promise<WebSocket>((resolve, reject) => {
      socket.once('open', () => resolve(socket));
      socket.once('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let problem: unknown = {};
          try {
            problem = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            // not a problem body
          }
          reject(problemToError(problem, res.statusCode ?? 500));
          socket.terminate();
        });
      });
      socket.once('error', (error) => reject(this.transportError(error)));
    });
  }

  private transportError(error: unknown): VisorError {
    if (error instanceof VisorError) return error;
    const code = (error as NodeJS.ErrnoException).code;
    if ((error as Error).name === 'AbortError') return new VisorError('cancelled', 'cancelled', 'The request was cancelled.');
    if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE') {
      return new VisorError('unavailable', 'daemon-unavailable', `No Visor daemon answers on ${this.endpoint}.`, {
        hint: 'Start one with "visor daemon", or let the CLI start it (it does when it runs on the socket).',
        details: { errno: code },
        cause: error,
      });
    }
    return new VisorError('failed', 'transport-failed', `Talking to the daemon on ${this.endpoint} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * The outcome of a finished job: its result when it succeeded, else its error thrown as the
 * VisorError it was.
 */
export function jobResult<T>(job: Job): T {
  if (job.state === 'succeeded') return job.result as T;
  const e = job.error;
  if (e) throw new VisorError(e.kind, e.code, e.message, { field: e.field, hint: e.hint, details: e.details });
  throw new VisorError(job.state === 'cancelled' ? 'cancelled' : 'failed', `job-${job.state}`, `Job ${job.kind} on "${job.target}" ${job.state}.`);
}

function vmPath(ref: string): string {
  return `/v1/vms/${encodeURIComponent(ref)}`;
}
