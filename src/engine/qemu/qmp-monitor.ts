import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { VisorError } from '../../core/index.js';
import { Deadline, type WaitOptions } from './deadline.js';
import { ENGINE_ERROR_CODES, qmpCommandFailed, qmpDisconnected } from './engine-errors.js';
import { JsonLineReader } from './json-lines.js';
import { isQmpEvent, isQmpGreeting } from './qmp-types.js';
import type { QmpEvent, QmpGreeting, QmpResponse } from './qmp-types.js';
import { connectUnixSocket } from './unix-socket.js';

export interface QmpMonitorEvents {
  /** Every asynchronous QMP event, in arrival order. */
  event: [QmpEvent];
  /** The connection ended: QEMU went away, or we closed it (`error` is undefined then). */
  close: [VisorError | undefined];
}

/** Default budget of one command; long ones (migrate) return at once and are polled. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;

interface Pending {
  command: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/**
 * One QMP connection (the model: Incus' qmp/monitor.go): greeting, capabilities negotiation,
 * commands matched to answers by id, events fanned out on `event`. Not a command set: see
 * QmpClient. Disposing closes our socket only; QEMU runs on.
 */
export class QmpMonitor extends EventEmitter<QmpMonitorEvents> implements Disposable {
  readonly #socket: Socket;
  readonly #reader = new JsonLineReader();
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed: VisorError | null = null;
  #greetingWaiter: ((greeting: QmpGreeting) => void) | null = null;
  greeting: QmpGreeting | null = null;

  /** Wraps a connected socket; use `connect()` to get a negotiated monitor. */
  constructor(socket: Socket) {
    super();
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error) => this.#shutdown(qmpDisconnected(error.message, error)));
    socket.on('close', () => this.#shutdown(qmpDisconnected('QEMU closed the socket')));
  }

  /**
   * Connects, reads the greeting and leaves negotiation mode. QEMU's QMP chardev serves one
   * client at a time: while another is connected our greeting never comes and this times out.
   */
  static async connect<T extends QmpMonitor>(
    this: new (socket: Socket) => T,
    path: string,
    options: WaitOptions = {},
  ): Promise<T> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const deadline = new Deadline(`Connecting to QMP at ${path}`, timeoutMs, options.signal);
    let monitor: T | null = null;
    try {
      const socket = await connectUnixSocket(path, { signal: deadline.signal, timeoutMs });
      monitor = new this(socket);
      await monitor.#handshake(deadline);
      return monitor;
    } catch (error) {
      monitor?.dispose();
      throw error;
    } finally {
      deadline.dispose();
    }
  }

  get closed(): boolean {
    return this.#closed !== null;
  }

  /** Runs one command and returns its `return` value; QEMU's `error` becomes a VisorError. */
  async execute<T = unknown>(command: string, args?: Record<string, unknown>, options: WaitOptions = {}): Promise<T> {
    if (this.#closed) throw this.#closed;
    const deadline = new Deadline(`QMP command "${command}"`, options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS, options.signal);
    const id = this.#nextId++;
    try {
      deadline.check();
      return await new Promise<T>((resolve, reject) => {
        const onAbort = (): void => {
          this.#pending.delete(id);
          reject(deadline.signal.reason as Error);
        };
        deadline.signal.addEventListener('abort', onAbort, { once: true });
        this.#pending.set(id, {
          command,
          resolve: (value) => {
            deadline.signal.removeEventListener('abort', onAbort);
            resolve(value as T);
          },
          reject: (error) => {
            deadline.signal.removeEventListener('abort', onAbort);
            reject(error);
          },
        });
        const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
        this.#socket.write(`${JSON.stringify(message)}\n`);
      });
    } finally {
      deadline.dispose();
    }
  }

  /**
   * Resolves with the first event called `name` that satisfies `predicate`, arriving after the
   * call. Rejects when the connection closes, the signal aborts or the time-out passes.
   */
  waitForEvent(name: string, predicate: (event: QmpEvent) => boolean = () => true, options: WaitOptions = {}): Promise<QmpEvent> {
    if (this.#closed) return Promise.reject(this.#closed);
    const deadline = new Deadline(`Waiting for QMP event ${name}`, options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS, options.signal);
    return new Promise<QmpEvent>((resolve, reject) => {
      const cleanup = (): void => {
        this.off('event', onEvent);
        this.off('close', onClose);
        deadline.signal.removeEventListener('abort', onAbort);
        deadline.dispose();
      };
      const onEvent = (event: QmpEvent): void => {
        if (event.event !== name || !predicate(event)) return;
        cleanup();
        resolve(event);
      };
      const onClose = (error: VisorError | undefined): void => {
        cleanup();
        reject(error ?? qmpDisconnected('we closed the connection'));
      };
      const onAbort = (): void => {
        cleanup();
        reject(deadline.signal.reason as Error);
      };
      this.on('event', onEvent);
      this.on('close', onClose);
      deadline.signal.addEventListener('abort', onAbort, { once: true });
      if (deadline.signal.aborted) onAbort();
    });
  }

  /** Closes our end. QEMU keeps running and accepts the next client. */
  dispose(): void {
    this.#shutdown(undefined);
    this.#socket.destroy();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async #handshake(deadline: Deadline): Promise<void> {
    const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
      const onGreeting = (message: QmpGreeting): void => {
        cleanup();
        resolve(message);
      };
      const onClose = (error: VisorError | undefined): void => {
        cleanup();
        reject(error ?? qmpDisconnected('closed before the greeting'));
      };
      const onAbort = (): void => {
        cleanup();
        reject(deadline.signal.reason as Error);
      };
      const cleanup = (): void => {
        this.#greetingWaiter = null;
        this.off('close', onClose);
        deadline.signal.removeEventListener('abort', onAbort);
      };
      this.#greetingWaiter = onGreeting;
      this.on('close', onClose);
      deadline.signal.addEventListener('abort', onAbort, { once: true });
      if (deadline.signal.aborted) onAbort();
    });
    this.greeting = greeting;
    await this.execute('qmp_capabilities', undefined, { signal: deadline.signal, timeoutMs: deadline.timeoutMs });
  }

  #onData(chunk: Buffer): void {
    let messages: unknown[];
    try {
      messages = this.#reader.push(chunk);
    } catch (error) {
      const protocol = new VisorError('failed', ENGINE_ERROR_CODES.qmpProtocol, 'QEMU sent a QMP line that is not JSON.', { cause: error });
      this.#shutdown(protocol);
      this.#socket.destroy();
      return;
    }
    for (const message of messages) this.#dispatch(message);
  }

  #dispatch(message: unknown): void {
    if (isQmpGreeting(message)) {
      this.#greetingWaiter?.(message);
      return;
    }
    if (isQmpEvent(message)) {
      this.emit('event', message);
      return;
    }
    const response = message as QmpResponse;
    const id = typeof response.id === 'number' ? response.id : undefined;
    const pending = id === undefined ? undefined : this.#pending.get(id);
    if (!pending || id === undefined) return; // an answer to a command we gave up on
    this.#pending.delete(id);
    if ('error' in response) pending.reject(qmpCommandFailed(pending.command, response.error.class, response.error.desc));
    else pending.resolve(response.return);
  }

  #shutdown(error: VisorError | undefined): void {
    if (this.#closed) return;
    this.#closed = error ?? qmpDisconnected('we closed the connection');
    for (const pending of this.#pending.values()) pending.reject(this.#closed);
    this.#pending.clear();
    this.emit('close', error);
  }
}
