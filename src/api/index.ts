/**
 * The public API for front ends: the typed client, problem decoding, and the instance's paths.
 * Light on purpose (no zod, no fastify): the CLI starts in well under 100 ms. The schemas and the
 * OpenAPI document are in ./contract/.
 */
export { VisorClient, jobResult } from './client.js';
export type { VisorClientOptions, RawResponse, RequestOptions, WaitOptions, Subscription, VmJob, DiskJob } from './client.js';
export { problemToError } from './problem.js';
export { resolvePaths } from './paths.js';
export type { VisorPaths, PathInputs } from './paths.js';
export type { DaemonInfo, HostInfo, Job, JobState, Problem, VisorEvent } from './contract/schemas.js';
// Light parts of core the front ends need (errors, sizes), re-exported past core's index, which
// loads zod.
export { VisorError, asVisorError } from '../core/errors.js';
export type { ErrorKind, SerializedError } from '../core/errors.js';
export { parseSize, formatSize, MiB, GiB } from '../core/units.js';
