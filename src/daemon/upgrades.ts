import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';
import { parseOrThrow, VisorError } from '../core/index.js';
import type { RouteSpec } from '../api/contract/index.js';
import type { Input, Services, SocketHandler } from './handler.js';
import { toProblem } from './problem.js';

interface SocketRoute {
  route: RouteSpec;
  pattern: RegExp;
  names: string[];
  handler: SocketHandler;
}

export interface UpgradeHandler {
  (req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Closes every WebSocket this handler opened. */
  close(): void;
}

/**
 * WebSocket endpoints (the event stream, serial consoles). `ws` is loaded on the first upgrade,
 * not at start-up: the daemon stays small until someone connects. A route's `check` runs
 * before the upgrade, so a missing VM answers a 404 problem rather than a socket that closes.
 */
export function createUpgradeHandler(
  entries: ReadonlyArray<{ route: RouteSpec; handler: SocketHandler }>,
  services: Services,
  options: { maxPayload: number },
): UpgradeHandler {
  const routes: SocketRoute[] = entries.map(({ route, handler }) => {
    const names: string[] = [];
    const source = route.path.replace(/\{(\w+)\}/g, (_m, name: string) => {
      names.push(name);
      return '([^/]+)';
    });
    return { route, handler, names, pattern: new RegExp(`^${source}$`) };
  });
  let server: WebSocketServer | undefined;
  let closed = false;

  const handle = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    socket.on('error', () => undefined);
    try {
      const path = (req.url ?? '/').split('?')[0]!;
      const match = routes.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m);
      if (!match) throw new VisorError('not-found', 'route-not-found', `No WebSocket endpoint ${path}.`, { hint: 'The API is described at /v1/openapi.json.' });
      const raw: Record<string, string> = {};
      match.r.names.forEach((name, i) => {
        raw[name] = decodeURIComponent(match.m![i + 1]!);
      });
      const params = match.r.route.params ? (parseOrThrow(match.r.route.params, raw) as Record<string, string>) : {};
      const input: Input = { params, query: {}, body: undefined, signal: new AbortController().signal, preferWaitMs: 0 };
      await match.r.handler.check(input, services);
      if (closed) throw new VisorError('unavailable', 'daemon-closing', 'The daemon is closing.');
      if (!server) {
        const { WebSocketServer } = await import('ws');
        server ??= new WebSocketServer({ noServer: true, maxPayload: options.maxPayload });
      }
      server.handleUpgrade(req, socket, head, (ws) => match.r.handler.open(ws, input, services));
    } catch (error) {
      const problem = toProblem(error, req.url);
      const body = JSON.stringify(problem);
      socket.end(
        `HTTP/1.1 ${problem.status} ${problem.title}\r\ncontent-type: application/problem+json\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    }
  };
  const upgrade: UpgradeHandler = Object.assign((req: IncomingMessage, socket: Duplex, head: Buffer) => void handle(req, socket, head), {
    close: () => undefined,
  });
  upgrade.close = () => {
    closed = true;
    for (const client of server?.clients ?? []) client.terminate();
    server?.close();
  };
  return upgrade;
}
