import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { VisorError } from '../../core/index.js';
import { Deadline } from './deadline.js';

export interface ConnectOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * Connects to a unix socket. Refused or missing sockets fail at once with a `failed` VisorError
 * (code `socket-unavailable`); the caller decides whether to retry.
 */
export async function connectUnixSocket(path: string, options: ConnectOptions = {}): Promise<Socket> {
  const deadline = new Deadline(`Connecting to ${path}`, options.timeoutMs ?? 5000, options.signal);
  try {
    deadline.check();
    return await new Promise<Socket>((resolve, reject) => {
      const socket = createConnection({ path });
      const onAbort = (): void => {
        socket.destroy();
        reject(deadline.signal.reason as Error);
      };
      deadline.signal.addEventListener('abort', onAbort, { once: true });
      socket.once('connect', () => {
        deadline.signal.removeEventListener('abort', onAbort);
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        deadline.signal.removeEventListener('abort', onAbort);
        socket.destroy();
        reject(
          new VisorError('failed', 'socket-unavailable', `Cannot connect to ${path}: ${error.code ?? error.message}.`, {
            cause: error,
            details: { errno: error.code },
          }),
        );
      });
    });
  } finally {
    deadline.dispose();
  }
}
