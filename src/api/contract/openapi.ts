import { z } from 'zod';
import { ROUTES, type RouteSpec } from './routes.js';
import * as S from './schemas.js';

/** Request bodies are described as callers may send them (defaults optional). */
const REQUESTS: Record<string, z.ZodType> = {
  VmCreateSpec: S.VmCreateSpec,
  VmUpdateSpec: S.VmUpdateSpec,
  ExecSpec: S.ExecSpec,
  ShutdownRequest: S.ShutdownRequest,
  DiskNewSpec: S.DiskNewSpec,
  DiskConvertSpec: S.DiskConvertSpec,
  DiskResizeSpec: S.DiskResizeSpec,
  DiskPathSpec: S.DiskPathSpec,
  VmDiskAddSpec: S.VmDiskAddSpec,
  VmDvdSpec: S.VmDvdSpec,
  VmMoveStorageSpec: S.VmMoveStorageSpec,
};

/** Responses are described as the daemon sends them (defaults filled in). */
const RESPONSES: Record<string, z.ZodType> = {
  Problem: S.Problem,
  SerializedError: S.SerializedError,
  DaemonInfo: S.DaemonInfo,
  OpenApiDocument: S.OpenApiDocument,
  HostInfo: S.HostInfo,
  VmView: S.VmView,
  VmList: S.VmList,
  ImageInfo: S.ImageInfo,
  ImageList: S.ImageList,
  ExecResult: S.ExecResult,
  DiskInfo: S.DiskInfo,
  DiskList: S.DiskList,
  Job: S.Job,
  JobList: S.JobList,
  VisorEvent: S.VisorEvent,
};

const PROBLEM_CONTENT = { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } };

type Json = Record<string, unknown>;

function registry(entries: Record<string, z.ZodType>): { reg: z.core.$ZodRegistry<{ id: string }>; ids: Map<z.ZodType, string> } {
  const reg = z.registry<{ id: string }>();
  const ids = new Map<z.ZodType, string>();
  for (const [id, schema] of Object.entries(entries)) {
    reg.add(schema, { id });
    ids.set(schema, id);
  }
  return { reg, ids };
}

function components(entries: Record<string, z.ZodType>, io: 'input' | 'output'): { schemas: Json; ids: Map<z.ZodType, string> } {
  const { reg, ids } = registry(entries);
  const out = z.toJSONSchema(reg, { io, target: 'draft-2020-12', uri: (id) => `#/components/schemas/${id}` });
  const schemas: Json = {};
  for (const [id, schema] of Object.entries(out.schemas)) {
    const { $schema: _drop, $id: _id, ...rest } = schema as Json;
    schemas[id] = rest;
  }
  return { schemas, ids };
}

function refTo(ids: Map<z.ZodType, string>, schema: z.ZodType, where: string): Json {
  const id = ids.get(schema);
  if (!id) throw new Error(`${where}: its schema is not a named component; add it to openapi.ts.`);
  return { $ref: `#/components/schemas/${id}` };
}

function parameters(route: RouteSpec): Json[] {
  const out: Json[] = [];
  for (const [where, schema] of [['path', route.params], ['query', route.query]] as const) {
    if (!schema) continue;
    const json = z.toJSONSchema(schema, { io: 'input' }) as { properties?: Record<string, Json>; required?: string[] };
    for (const [name, property] of Object.entries(json.properties ?? {})) {
      const { description, ...rest } = property;
      out.push({
        name,
        in: where,
        required: where === 'path' || (json.required ?? []).includes(name),
        ...(description ? { description } : {}),
        schema: rest,
      });
    }
  }
  return out;
}

/** The OpenAPI 3.1 document of the public API, generated from the route table and schemas. */
export function buildOpenApiDocument(version: string): Json {
  const requests = components(REQUESTS, 'input');
  const responses = components(RESPONSES, 'output');
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of ROUTES) {
    const where = `${route.method} ${route.path}`;
    const operation: Json = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
    };
    const params = parameters(route);
    if (params.length) operation.parameters = params;
    if (route.body) {
      operation.requestBody = {
        required: !route.bodyOptional,
        content: { 'application/json': { schema: refTo(requests.ids, route.body, where) } },
      };
    }
    const answers: Record<string, Json> = {};
    for (const [status, spec] of Object.entries(route.responses)) {
      const answer: Json = { description: spec.description };
      if (spec.schema) answer.content = { 'application/json': { schema: refTo(responses.ids, spec.schema, where) } };
      else if (spec.contentType) answer.content = { [spec.contentType]: { schema: { type: 'string', contentMediaType: spec.contentType } } };
      if (status === '202') answer.headers = { Location: { description: 'The job: /v1/jobs/{id}.', schema: { type: 'string' } } };
      answers[status] = answer;
    }
    answers.default = { description: 'An error, as RFC 9457 problem details.', content: PROBLEM_CONTENT };
    operation.responses = answers;
    if (route.websocket) {
      operation['x-websocket'] =
        route.websocket.message === 'bytes'
          ? { messages: 'binary', description: 'Raw bytes both ways.' }
          : { messages: 'text', schema: refTo(responses.ids, route.websocket.message, where) };
    }
    (paths[route.path] ??= {})[route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Visor API',
      version,
      description:
        'The API of visord. Synchronous calls answer 200/204 with the resource; long operations answer 202 with a job; errors are RFC 9457 problem details. See docs/API.md.',
    },
    servers: [{ url: '/', description: 'The unix socket $VISOR_RUN/visord.sock, or TCP with a bearer token.' }],
    security: [{}, { bearer: [] }],
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: {
      schemas: { ...requests.schemas, ...responses.schemas },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Required on TCP; the token is in $VISOR_HOME/api-token.' } },
    },
  };
}
