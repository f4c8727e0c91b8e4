import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerFactory } from 'fastify';
import { parseOrThrow, VisorError } from '../core/index.js';
import { ROUTES, buildOpenApiDocument, type RouteSpec } from '../api/contract/index.js';
import type { VmService } from '../vms/index.js';
import type { JobManager } from '../jobs/index.js';
import { EventHub } from './event-hub.js';
import type { Answer, Handler, HandlerTable, Input, Services, SocketHandler } from './handler.js';
import { toProblem, toVisorError } from './problem.js';
import { hostHandlers } from './routes/host.js';
import { vmHandlers } from './routes/vms.js';
import { jobHandlers } from './routes/jobs.js';
import { socketHandlers } from './routes/sockets.js';
import { registerWeb } from './web.js';
import { createUpgradeHandler, type UpgradeHandler } from './upgrades.js';

export const HANDLERS: HandlerTable = { ...hostHandlers, ...vmHandlers, ...jobHandlers, ...socketHandlers };

export interface AppOptions {
  vmService: VmService;
  jobs: JobManager;
  hostInfo: () => unknown;
  version: string;
  /** Folder of the web Manager, served at `/`; null serves nothing. */
  webDir?: string | null;
  /** One line per request on stderr. */
  debug?: boolean;
  serverFactory?: FastifyServerFactory;
}

export interface App {
  fastify: FastifyInstance;
  hub: EventHub;
  /** For the servers' 'upgrade' event: the WebSocket endpoints. */
  upgrade: UpgradeHandler;
}

/** Request bodies are small JSON; exec input is the largest (1 MiB is plenty). */
const BODY_LIMIT = 1024 * 1024;

/** The HTTP application: routes from the contract's route table, problems for every error. */
export async function buildApp(options: AppOptions): Promise<App> {
  const fastify = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    forceCloseConnections: true,
    ...(options.serverFactory ? { serverFactory: options.serverFactory } : {}),
  });
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

  if (options.debug) {
    fastify.addHook('onResponse', async (request, reply) => {
      process.stderr.write(
        `${new Date().toISOString()} debug ${request.method} ${request.url} ${reply.statusCode} ${reply.elapsedTime.toFixed(1)}ms\n`,
      );
    });
  }
  fastify.setErrorHandler(async (error, request, reply) => {
    const problem = toProblem(error, request.url);
    if (problem.status >= 500 && options.debug) process.stderr.write(`error ${request.method} ${request.url}: ${String(toVisorError(error).stack)}\n`);
    return reply.code(problem.status).type('application/problem+json').send(problem);
  });
  fastify.setNotFoundHandler(async (request, reply) => {
    const problem = toProblem(
      new VisorError('not-found', 'route-not-found', `No route ${request.method} ${request.url.split('?')[0]}.`, {
        hint: 'The API is described at /v1/openapi.json.',
      }),
      request.url,
    );
    return reply.code(404).type('application/problem+json').send(problem);
  });

  for (const route of ROUTES) {
    const handler = HANDLERS[route.operationId];
    if (!handler) throw new VisorError('bug', 'route-without-handler', `Route ${route.operationId} has no handler.`);
    const url = route.path.replace(/\{(\w+)\}/g, ':$1');
    if (route.websocket) {
      // Served by the upgrade handler; a plain GET gets told so.
      fastify.get(url, async () => {
        throw new VisorError('invalid', 'websocket-required', `${route.path} is a WebSocket endpoint.`, {
          hint: 'Connect with a WebSocket client (Upgrade: websocket).',
        });
      });
      continue;
    }
    fastify.route({
      method: route.method,
      url,
      handler: async (request, reply) => {
        const input = parseInput(route, request);
        const closed = new AbortController();
        reply.raw.once('close', () => {
          if (!reply.raw.writableFinished) closed.abort();
        });
        input.signal = closed.signal;
        const answer: Answer = await (handler as Handler)(input, services);
        reply.code(answer.status);
        for (const [name, value] of Object.entries(answer.headers ?? {})) reply.header(name, value);
        if (answer.status === 204 || answer.body === undefined) return reply.send();
        if (answer.contentType) return reply.type(answer.contentType).send(answer.body);
        return reply.type('application/json').send(JSON.stringify(answer.body));
      },
    });
  }

  if (options.webDir) registerWeb(fastify, options.webDir);
  const upgrade = createUpgradeHandler(
    ROUTES.filter((r) => r.websocket).map((route) => ({ route, handler: HANDLERS[route.operationId] as SocketHandler })),
    services,
    { maxPayload: BODY_LIMIT },
  );
  return { fastify, hub, upgrade };
}

function parseInput(route: RouteSpec, request: FastifyRequest): Input {
  const params = route.params ? parseOrThrow(route.params, request.params) : {};
  const query = route.query ? parseOrThrow(route.query, request.query ?? {}) : {};
  let body: unknown;
  if (route.body) {
    const raw = request.body;
    if ((raw === undefined || raw === null) && !route.bodyOptional) {
      throw new VisorError('invalid', 'body-required', `${route.method} ${route.path} needs a JSON body.`, {
        hint: 'Send Content-Type: application/json with the request object; see /v1/openapi.json.',
      });
    }
    body = parseOrThrow(route.body, raw ?? {});
  }
  return { params: params as Record<string, string>, query: query as Record<string, unknown>, body, signal: new AbortController().signal };
}
