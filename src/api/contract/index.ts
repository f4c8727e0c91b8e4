/**
 * The wire contract: zod schemas, the route table and the OpenAPI document made from them. The
 * daemon parses requests with these; tests hold responses to the document. Front ends that care
 * about start-up time use the light client in ../index.ts instead, which does not load zod.
 */
export * from './schemas.js';
export { ROUTES, API_PREFIX } from './routes.js';
export type { RouteSpec, ResponseSpec, HttpMethod } from './routes.js';
export { buildOpenApiDocument } from './openapi.js';
