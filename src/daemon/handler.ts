import type { WebSocket } from 'ws';
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
