import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseOrThrow, VisorError } from '../core/index.js';
import { ROUTES, buildOpenApiDocument, type RouteSpec } from '../api/contract/index.js';
import type { VmService } from '../vms/index.js';
import type { JobManager } from '../jobs/index.js';
import { EventHub } from './event-hub.js';
import type { Answer, Handler, HandlerTable, Input, Services, SocketHandler } from './handler.js';
import { preferWaitMs } from './handler.js';
import { toProblem, toVisorError } from './problem.js';
import { readJsonBody } from './request-body.js';
import { hostHandlers } from './routes/host.js';
import { vmHandlers } from './routes/vms.js';
import { jobHandlers } from './routes/jobs.js';
import { diskHandlers } from './routes/disks.js';
import { socketHandlers } from './routes/sockets.js';
import { serveWebFile } from './web.js';
import { createUpgradeHandler, type UpgradeHandler } from './upgrades.js';

export const HANDLERS: HandlerTable = { ...hostHandlers, ...vmHandlers, ...diskHandlers, ...jobHandlers, ...socketHandlers };

export interface AppOptions {
  vmService: VmService;
  jobs: JobManager;
  hostInfo: () => unknown;
  version: string;
  /** Folder of the web Manager, served at `/`; null serves nothing. */
  webDir?: string | null;
  /** One line per request on stderr. */
  debug?: boolean;
}

export interface App {
  /** The servers' request listener. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** The servers' 'upgrade' listener: the WebSocket endpoints. */
  upgrade: UpgradeHandler;
  hub: EventHub;
  /** Detaches from the services and drops WebSocket clients. */
  close(): void;
}

/** Request bodies are small JSON; exec input is the largest (1 MiB is plenty). */
export const BODY_LIMIT = 1024 * 1024;

interface CompiledRoute {
  route: RouteSpec;
  pattern: RegExp;
  names: string[];
  handler: Handler | SocketHandler;
}

/**
 * The HTTP application on node:http: routes from the contract's route table, parsed with its
 * schemas, and a problem for every error. (Not Fastify: with the VM service loaded it cost the
 * daemon ~5 MiB of its 60 MiB budget; the route table already does what we used it for.)
 */
export function buildApp(options: AppOptions): App {
  const hub = new EventHub(options.vmService, options.jobs);
  let openApi: Record<string, unknown> | undefined;
  const services: Services = {
    vmService: options.vmService,
    jobs: options.jobs,
    hostInfo: options.hostInfo,
    hub,
    version: options.version,
    startedAt: new Date(),
    openApi: () => (openApi ??= buildOpenApiDocument(options.version)),
  };
  const routes: CompiledRoute[] = ROUTES.map((route) => {
    const handler = HANDLERS[route.operationId];
    if (!handler) throw new VisorError('bug', 'route-without-handler', `Route ${route.operationId} has no handler.`);
    const names: string[] = [];
    const source = route.path.replace(/\{(\w+)\}/g, (_m, name: string) => {
      names.push(name);
      return '([^/]+)';
    });
    return { route, handler, names, pattern: new RegExp(`^${source}$`) };
  });

  async function dispatch(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    if (options.webDir && method === 'GET' && (url.pathname === '/' || url.pathname.startsWith('/web/'))) {
      const file = await serveWebFile(options.webDir, url.pathname === '/' ? 'index.html' : url.pathname.slice('/web/'.length));
      res.writeHead(200, { 'content-type': file.type, 'content-length': file.body.length, 'cache-control': 'no-cache' });
      res.end(file.body);
      return;
    }
    let found: { compiled: CompiledRoute; match: RegExpExecArray } | undefined;
    for (const compiled of routes) {
      if (compiled.route.method !== method) continue;
      const match = compiled.pattern.exec(url.pathname);
      if (match) {
        found = { compiled, match };
        break;
      }
    }
    if (!found) {
      throw new VisorError('not-found', 'route-not-found', `No route ${method} ${url.pathname}.`, {
        hint: 'The API is described at /v1/openapi.json.',
      });
    }
    const { route, handler, names } = found.compiled;
    if (route.websocket) {
      throw new VisorError('invalid', 'websocket-required', `${route.path} is a WebSocket endpoint.`, {
        hint: 'Connect with a WebSocket client (Upgrade: websocket).',
      });
    }
    const rawParams: Record<string, string> = {};
    names.forEach((name, i) => {
      rawParams[name] = decodeURIComponent(found.match[i + 1]!);
    });
    const body = route.body ? await readJsonBody(req, BODY_LIMIT) : undefined;
    const input = parseInput(route, rawParams, Object.fromEntries(url.searchParams), body);
    const gone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    input.signal = gone.signal;
    input.preferWaitMs = preferWaitMs(req.headers.prefer);
    const answer: Answer = await (handler as Handler)(input, services);
    const headers: Record<string, string | number> = { ...answer.headers };
    if (answer.status === 204 || answer.body === undefined) {
      res.writeHead(answer.status, headers);
      res.end();
      return;
    }
    const payload = answer.contentType ? (answer.body as Buffer) : Buffer.from(JSON.stringify(answer.body));
    headers['content-type'] = answer.contentType ?? 'application/json; charset=utf-8';
    headers['content-length'] = payload.length;
    res.writeHead(answer.status, headers);
    res.end(payload);
  }

  function fail(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    const problem = toProblem(error, req.url);
    if (problem.status >= 500 && options.debug) process.stderr.write(`error ${req.method} ${req.url}: ${String(toVisorError(error).stack)}\n`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = Buffer.from(JSON.stringify(problem));
    res.writeHead(problem.status, { 'content-type': 'application/problem+json; charset=utf-8', 'content-length': body.length });
    res.end(body);
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = process.hrtime.bigint();
    if (options.debug) {
      res.once('finish', () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        process.stderr.write(`${new Date().toISOString()} debug ${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(1)}ms\n`);
      });
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://visor');
    } catch (error) {
      fail(req, res, new VisorError('invalid', 'invalid-url', `The request URL is not valid: ${String(req.url)}.`, { cause: error }));
      return;
    }
    dispatch(req, res, url).catch((error: unknown) => fail(req, res, error));
  };

  const upgrade = createUpgradeHandler(
    ROUTES.filter((r) => r.websocket).map((route) => ({ route, handler: HANDLERS[route.operationId] as SocketHandler })),
    services,
    { maxPayload: BODY_LIMIT },
  );
  return {
    handle,
    upgrade,
    hub,
    close: () => {
      hub.close();
      upgrade.close();
    },
  };
}

function parseInput(route: RouteSpec, rawParams: Record<string, string>, rawQuery: Record<string, string>, rawBody: unknown): Input {
  const params = route.params ? parseOrThrow(route.params, rawParams) : {};
  const query = route.query ? parseOrThrow(route.query, rawQuery) : {};
  let body: unknown;
  if (route.body) {
    if (rawBody === undefined && !route.bodyOptional) {
      throw new VisorError('invalid', 'body-required', `${route.method} ${route.path} needs a JSON body.`, {
        hint: 'Send Content-Type: application/json with the request object; see /v1/openapi.json.',
      });
    }
    body = parseOrThrow(route.body, rawBody ?? {});
  }
  return { params: params as Record<string, string>, query: query as Record<string, unknown>, body, signal: new AbortController().signal, preferWaitMs: 0 };
}
