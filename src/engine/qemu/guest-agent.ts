import type { Socket } from 'node:net';
import { VisorError } from '../../core/index.js';
import { Deadline, type WaitOptions } from './deadline.js';
import { ENGINE_ERROR_CODES, qmpDisconnected } from './engine-errors.js';
import { JsonLineReader, SYNC_SENTINEL } from './json-lines.js';
import { pollUntil } from './poll.js';
import { connectUnixSocket } from './unix-socket.js';

export interface ExecOptions extends WaitOptions {
  /** Text fed to the command's stdin. */
  input?: string;
}

export interface GuestExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

interface ExecStatus {
  exited: boolean;
  exitcode?: number;
  signal?: number;
  'out-data'?: string;
  'err-data'?: string;
}

const DEFAULT_AGENT_TIMEOUT_MS = 5_000;
const EXEC_POLL_INTERVAL_MS = 100;

/**
 * The QEMU guest agent on the VM's virtio-serial port (qga.sock). The agent has no greeting and
 * no ids, and a reply to a command we gave up on may still arrive, so each session starts (and
 * restarts after a time-out) with guest-sync-delimited: a random id sent after a 0xFF byte,
 * answered by 0xFF then {"return": id}; everything before it is stale. One command at a time.
 */
export class GuestAgent implements Disposable {
  readonly #socket: Socket;
  readonly #reader = new JsonLineReader();
  #waiter: ((message: unknown) => void) | null = null;
  #closedError: VisorError | null = null;
  #onClose: ((error: VisorError) => void) | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #synced = false;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    const closed = (): void => {
      if (this.#closedError) return;
      this.#closedError = qmpDisconnected('the guest agent socket closed');
      this.#onClose?.(this.#closedError);
    };
    socket.on('error', closed);
    socket.on('close', closed);
  }

  /** Connects to the socket and synchronises with the agent (fails when no agent answers). */
  static async connect(path: string, options: WaitOptions = {}): Promise<GuestAgent> {
    const socket = await connectUnixSocket(path, options);
    const agent = new GuestAgent(socket);
    try {
      await agent.sync(options);
      return agent;
    } catch (error) {
      agent.dispose();
      throw error;
    }
  }

  /** guest-sync-delimited: discards stale replies; proves an agent is listening. */
  sync(options: WaitOptions = {}): Promise<void> {
    return this.#serial(() => this.#sync(options));
  }

  async ping(options: WaitOptions = {}): Promise<void> {
    await this.command('guest-ping', undefined, options);
  }

  /** Runs a guest command (guest-exec) and returns its exit code and output. */
  async exec(path: string, args: readonly string[] = [], options: ExecOptions = {}): Promise<GuestExecResult> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const deadline = new Deadline(`Running "${path}" in the guest`, timeoutMs, options.signal);
    try {
      const request: Record<string, unknown> = { path, arg: [...args], 'capture-output': true };
      if (options.input !== undefined) request['input-data'] = Buffer.from(options.input).toString('base64');
      const started = await this.command<{ pid: number }>('guest-exec', request, { signal: deadline.signal, timeoutMs });
      const status = await pollUntil(
        async (signal) => {
          const s = await this.command<ExecStatus>('guest-exec-status', { pid: started.pid }, { signal, timeoutMs: DEFAULT_AGENT_TIMEOUT_MS });
          return s.exited ? s : undefined;
        },
        { what: `Running "${path}" in the guest`, timeoutMs, intervalMs: EXEC_POLL_INTERVAL_MS, signal: deadline.signal },
      );
      return {
        exitCode: status.exitcode ?? (status.signal === undefined ? -1 : 128 + status.signal),
        stdout: decode(status['out-data']),
        stderr: decode(status['err-data']),
      };
    } finally {
      deadline.dispose();
    }
  }

  /**
   * Asks the guest to power off (guest-shutdown). The agent sends no reply on success: the
   * command is written, and an error reply within a short grace counts as refusal.
   */
  async shutdown(options: WaitOptions & { mode?: 'powerdown' | 'reboot' | 'halt' } = {}): Promise<void> {
    await this.#serial(async () => {
      if (!this.#synced) await this.#sync(options);
      const reply = this.#nextMessage({ signal: options.signal, timeoutMs: options.timeoutMs ?? 1_000 });
      this.#write({ execute: 'guest-shutdown', arguments: { mode: options.mode ?? 'powerdown' } });
      try {
        const message = (await reply) as { error?: { desc: string } };
        if (message.error) throw agentFailed('guest-shutdown', message.error.desc);
      } catch (error) {
        if (error instanceof VisorError && (error.code === ENGINE_ERROR_CODES.timeout || error.code === ENGINE_ERROR_CODES.qmpDisconnected)) {
          this.#synced = false;
          return;
        }
        throw error;
      }
    });
  }

  /** One agent command; its `error` becomes a VisorError. */
  command<T = unknown>(name: string, args?: Record<string, unknown>, options: WaitOptions = {}): Promise<T> {
    return this.#serial(async () => {
      if (!this.#synced) await this.#sync(options);
      const reply = this.#nextMessage({ ...options, timeoutMs: options.timeoutMs ?? DEFAULT_AGENT_TIMEOUT_MS }, `Guest agent command "${name}"`);
      this.#write(args === undefined ? { execute: name } : { execute: name, arguments: args });
      try {
        const message = (await reply) as { return?: T; error?: { class: string; desc: string } };
        if (message.error) throw agentFailed(name, message.error.desc);
        return message.return as T;
      } catch (error) {
        if (!(error instanceof VisorError && error.code === ENGINE_ERROR_CODES.agentCommandFailed)) this.#synced = false;
        throw error;
      }
    });
  }

  dispose(): void {
    this.#socket.destroy();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async #sync(options: WaitOptions): Promise<void> {
    const id = Math.floor(Math.random() * 2 ** 31);
    this.#reader.resync();
    const deadline = new Deadline('Synchronising with the guest agent', options.timeoutMs ?? DEFAULT_AGENT_TIMEOUT_MS, options.signal);
    try {
      const reply = this.#nextMessage({ signal: deadline.signal, timeoutMs: deadline.timeoutMs + 1_000 }, deadline.what, (m) => (m as { return?: unknown }).return === id);
      this.#socket.write(Buffer.from([SYNC_SENTINEL]));
      this.#write({ execute: 'guest-sync-delimited', arguments: { id } });
      await reply;
      this.#synced = true;
    } catch (error) {
      if (error instanceof VisorError && error.code === ENGINE_ERROR_CODES.timeout) {
        throw new VisorError('unavailable', ENGINE_ERROR_CODES.agentUnavailable, 'The guest agent does not answer.', {
          cause: error,
          hint: 'Install and start qemu-guest-agent in the guest; it answers only once the guest has booted.',
        });
      }
      throw error;
    } finally {
      deadline.dispose();
    }
  }

  #write(message: Record<string, unknown>): void {
    this.#socket.write(`${JSON.stringify(message)}\n`);
  }

  /** Resolves with the next message (matching `accept`, others are dropped as stale). */
  #nextMessage(options: WaitOptions, what = 'Waiting for the guest agent', accept: (message: unknown) => boolean = () => true): Promise<unknown> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const deadline = new Deadline(what, options.timeoutMs ?? DEFAULT_AGENT_TIMEOUT_MS, options.signal);
    return new Promise<unknown>((resolve, reject) => {
      const cleanup = (): void => {
        this.#waiter = null;
        this.#onClose = null;
        deadline.signal.removeEventListener('abort', onAbort);
        deadline.dispose();
      };
      const onAbort = (): void => {
        cleanup();
        reject(deadline.signal.reason as Error);
      };
      this.#waiter = (message) => {
        if (!accept(message)) return;
        cleanup();
        resolve(message);
      };
      this.#onClose = (error) => {
        cleanup();
        reject(error);
      };
      deadline.signal.addEventListener('abort', onAbort, { once: true });
      if (deadline.signal.aborted) onAbort();
    });
  }

  #onData(chunk: Buffer): void {
    let messages: unknown[];
    try {
      messages = this.#reader.push(chunk);
    } catch {
      this.#synced = false; // garbage: the next command re-synchronises
      return;
    }
    for (const message of messages) this.#waiter?.(message);
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

function decode(base64: string | undefined): string {
  return base64 === undefined ? '' : Buffer.from(base64, 'base64').toString('utf8');
}

function agentFailed(command: string, desc: string): VisorError {
  return new VisorError('failed', ENGINE_ERROR_CODES.agentCommandFailed, `The guest agent refused "${command}": ${desc}`, {
    details: { command },
  });
}
