import type { WebSocket } from 'ws';
import type { OperationContext } from '../core/index.js';
import type { VmService } from '../vms/index.js';
import type { JobManager } from '../jobs/index.js';
import type { EventHub } from './event-hub.js';

/** What every handler may use. */
export interface Services {
  vmService: VmService;
  jobs: JobManager;
  hostInfo: () => unknown;
  hub: EventHub;
  version: string;
  startedAt: Date;
  openApi: () => Record<string, unknown>;
}

/** A request after its params, query and body were parsed with the route's schemas. */
export interface Input {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
  /** Aborts when the client goes away before the answer. */
  signal: AbortSignal;
  /** RFC 7240 `Prefer: wait=N`, in ms (0 when absent): how long a job route may hold its answer. */
  preferWaitMs: number;
}

export interface Answer {
  status: number;
  body?: unknown;
  /** A non-JSON body (Buffer) with its type. */
  contentType?: string;
  headers?: Record<string, string>;
}

export type Handler = (input: Input, services: Services) => Promise<Answer>;

export interface SocketHandler {
  /** Runs before the upgrade: throwing here answers a problem instead of switching protocols. */
  check(input: Input, services: Services): void | Promise<void>;
  open(socket: WebSocket, input: Input, services: Services): void;
}

export type HandlerTable = Record<string, Handler | SocketHandler>;

export const ok = (body: unknown): Answer => ({ status: 200, body });

/** The longest `Prefer: wait` honoured; a longer wish is cut to this. */
const MAX_PREFER_WAIT_MS = 10_000;

export function preferWaitMs(header: string | string[] | undefined): number {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  const seconds = Number(/(?:^|[,;\s])wait=(\d+(?:\.\d+)?)/.exec(text)?.[1] ?? 0);
  return Math.min(MAX_PREFER_WAIT_MS, Math.round(seconds * 1000));
}

/**
 * Runs work as a job and answers it: 202 with the job at once, or, when the client sent
 * `Prefer: wait=N` and the job ends within N seconds, 200 with the finished job (the client
 * then needs no event stream for a quick job). Either way the job is at `Location`.
 */
export async function acceptJob<T>(
  services: Services,
  input: Input,
  job: { kind: string; target: string; work: (ctx: OperationContext) => Promise<T> },
): Promise<Answer> {
  const started = services.jobs.run(job.kind, job.target, job.work);
  const headers = { location: `/v1/jobs/${started.id}` };
  if (input.preferWaitMs > 0) {
    const timeout = new Promise<null>((resolve) => setTimeout(resolve, input.preferWaitMs, null).unref());
    const finished = await Promise.race([services.jobs.wait(started.id), timeout]);
    if (finished) return { status: 200, body: finished, headers: { ...headers, 'preference-applied': 'wait' } };
  }
  return { status: 202, body: services.jobs.get(started.id), headers };
}
