import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { VisorError } from '../core/index.js';
import type { VmService } from '../vms/index.js';
import type { JobManager } from '../jobs/index.js';
import { buildApp, type App } from './app.js';
import { ensureApiToken, hasToken } from './auth.js';
import { toProblem } from './problem.js';
import { claimSocket } from './unix-socket.js';

export interface DaemonOptions {
  /** `$VISOR_HOME`. */
  home: string;
  /** `$VISOR_RUN`: the socket goes to `$VISOR_RUN/visord.sock`. */
  run: string;
  vmService: VmService;
  jobs: JobManager;
  /** Host facts for GET /v1/host (src/host's getHostInfo). */
  hostInfo: () => unknown;
  /** Also listen on TCP, e.g. "127.0.0.1:7380"; every request there needs the bearer token. */
  listen?: string;
  version?: string;
  /** Folder of the web Manager, served at `/`. */
  webDir?: string | null;
  /** One log line per request on stderr. */
  debug?: boolean;
}

export interface Daemon {
  /** Claims the socket, recovers jobs and VMs, then listens. Throws `daemon-running` if another daemon answers. */
  start(): Promise<void>;
  /** Closes the sockets and connections; the VMs keep running. Idempotent. */
  close(): Promise<void>;
  /** Where it listens once started. */
  readonly socketPath: string;
  readonly tcpAddress: { host: string; port: number } | null;
  /** The HTTP application (its request and upgrade listeners). */
  readonly app: App;
}

/** Paths the TCP listener serves without a token: the web page, which holds no data. */
const PUBLIC_PATHS = /^\/(?:$|web\/[^/]+$|\?)/;

export function createDaemon(options: DaemonOptions): Daemon {
  const socketPath = join(options.run, 'visord.sock');
  const app = buildApp({
    vmService: options.vmService,
    jobs: options.jobs,
    hostInfo: options.hostInfo,
    version: options.version ?? '0.0.0',
    webDir: options.webDir ?? null,
    debug: options.debug ?? false,
  });
  const unixServer = createServer(app.handle);
  unixServer.on('upgrade', app.upgrade);
  let tcpServer: Server | undefined;
  let tcpAddress: { host: string; port: number } | null = null;
  let closing: Promise<void> | undefined;
  let listening = false;

  async function start(): Promise<void> {
    await mkdir(options.run, { recursive: true, mode: 0o700 });
    // Claim first: a second daemon must refuse before it touches jobs or VMs.
    const release = await claimSocket(socketPath);
    try {
      await options.jobs.recover();
      await options.vmService.recover();
      const umask = process.umask(0o177);
      try {
        await listen(unixServer, { path: socketPath });
      } finally {
        process.umask(umask);
      }
      listening = true;
      await chmod(socketPath, 0o600);
    } finally {
      await release();
    }
    if (options.listen) {
      const { host, port } = parseListen(options.listen);
      const token = await ensureApiToken(join(options.home, 'api-token'));
      tcpServer = createServer((req, res) => {
        if (PUBLIC_PATHS.test(req.url ?? '') || hasToken(req.headers, token)) app.handle(req, res);
        else deny(res);
      });
      tcpServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        if (hasToken(req.headers, token)) app.upgrade(req, socket, head);
        else denyUpgrade(socket);
      });
      await listen(tcpServer, { host, port });
      const address = tcpServer.address();
      tcpAddress = typeof address === 'object' && address ? { host: address.address, port: address.port } : { host, port };
    }
  }

  function close(): Promise<void> {
    closing ??= (async () => {
      app.close();
      const servers = [tcpServer, listening ? unixServer : undefined].filter((s): s is Server => s !== undefined);
      const closed = servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
      for (const server of servers) server.closeAllConnections();
      await Promise.all(closed);
      if (listening) await rm(socketPath, { force: true });
      await options.jobs.close();
      await options.vmService.close();
    })();
    return closing;
  }

  return {
    start,
    close,
    socketPath,
    get tcpAddress() {
      return tcpAddress;
    },
    app,
  };
}

function listen(server: Server, where: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new VisorError('invalid', 'invalid-value', `--listen must be HOST:PORT: current value is "${text}".`, {
      field: 'listen',
      hint: 'For example 127.0.0.1:7380.',
    });
  }
  return { host: match[1] ?? match[2]!, port };
}

const UNAUTHORIZED = new VisorError('invalid', 'unauthorized', 'This request needs the API token.', {
  hint: 'Send "Authorization: Bearer TOKEN"; the token is in $VISOR_HOME/api-token.',
});

function deny(res: ServerResponse): void {
  const body = JSON.stringify({ ...toProblem(UNAUTHORIZED), status: 401, title: 'Unauthorized' });
  res.writeHead(401, { 'content-type': 'application/problem+json', 'www-authenticate': 'Bearer realm="visor"', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function denyUpgrade(socket: Duplex): void {
  const body = JSON.stringify({ ...toProblem(UNAUTHORIZED), status: 401, title: 'Unauthorized' });
  socket.end(
    `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/problem+json\r\nwww-authenticate: Bearer realm="visor"\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
