import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile, readFile, mkdir, rename } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { MiB, VisorError } from '../core/index.js';
import type { ImageInfo, VmView } from '../core/index.js';
import { createVmService, type VmService } from '../vms/index.js';
import { JobManager } from '../jobs/index.js';
import { getHostInfo } from '../host/index.js';
import { ROUTES, buildOpenApiDocument } from '../api/contract/index.js';
import { VisorClient, jobResult } from '../api/index.js';
import { createDaemon, type Daemon } from './daemon.js';
import { HANDLERS } from './app.js';

/** The images this checkout built (scripts/build-guests.sh); VM tests skip without them. */
const GUESTS = fileURLToPath(new URL('../../../guests/out', import.meta.url));
const HAVE_GUEST = existsSync(join(GUESTS, 'tiny-x64.vhdx'));

// ---------------------------------------------------------------------------------------------
// The contract check: every response these tests see is held to the generated OpenAPI document.

const require = createRequire(import.meta.url);
const Ajv2020 = require('ajv/dist/2020.js') as new (options: object) => {
  addSchema(schema: object, key: string): void;
  getSchema(ref: string): ((data: unknown) => boolean) & { errors?: unknown };
};
const openApi = buildOpenApiDocument('test') as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> }>>; components: { schemas: Record<string, object> } };
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema({ $id: 'openapi', components: openApi.components }, 'openapi');
let checkedResponses = 0;

function matchRoute(method: string, url: string): string | undefined {
  const path = url.split('?')[0]!;
  for (const template of Object.keys(openApi.paths)) {
    const pattern = new RegExp(`^${template.replace(/\{\w+\}/g, '[^/]+')}$`);
    if (pattern.test(path) && openApi.paths[template]![method.toLowerCase()]) return template;
  }
  return undefined;
}

function checkContract(method: string, url: string, status: number, contentType: string, body: string): void {
  const template = matchRoute(method, url);
  const responses = template ? openApi.paths[template]![method.toLowerCase()]!.responses : undefined;
  const spec = responses?.[String(status)] ?? responses?.default;
  if (!template || !spec) {
    // Unknown routes answer a problem: hold that to the Problem schema.
    assert.equal(contentType.split(';')[0], 'application/problem+json', `${method} ${url}: ${status} ${contentType}`);
    validate('Problem', JSON.parse(body), `${method} ${url}`);
    return;
  }
  const type = contentType.split(';')[0]!;
  if (!spec.content) {
    assert.equal(body, '', `${method} ${url} ${status}: the contract says no body`);
    return;
  }
  const media = spec.content[type];
  assert.ok(media, `${method} ${url} ${status}: content type ${type} is not in the contract (${Object.keys(spec.content).join(', ')})`);
  const ref = media.schema.$ref;
  if (ref) validate(ref.split('/').pop()!, JSON.parse(body), `${method} ${url} ${status}`);
  checkedResponses += 1;
}

function validate(component: string, data: unknown, where: string): void {
  const check = ajv.getSchema(`openapi#/components/schemas/${component}`);
  assert.ok(check, `no component ${component}`);
  assert.ok(check(data), `${where}: response does not match ${component}: ${JSON.stringify(check.errors)}\n${JSON.stringify(data)}`);
}

// ---------------------------------------------------------------------------------------------

let home = '';
let run = '';
let service: VmService;
let jobs: JobManager;
let daemon: Daemon;

interface InjectOptions {
  method?: string;
  url: string;
  payload?: unknown;
  headers?: Record<string, string>;
}

interface Reply {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: string;
  rawPayload: Buffer;
  json(): unknown;
}

/** One request over the daemon's unix socket, its answer held to the contract. */
async function inject(options: InjectOptions): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  let payload: Buffer | undefined;
  if (typeof options.payload === 'string') payload = Buffer.from(options.payload);
  else if (options.payload !== undefined) {
    payload = Buffer.from(JSON.stringify(options.payload));
    headers['content-type'] ??= 'application/json';
  }
  const response = await new Promise<Reply>((resolve, reject) => {
    const req = httpRequest({ socketPath: daemon.socketPath, method: options.method ?? 'GET', path: options.url, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const rawPayload = Buffer.concat(chunks);
        const body = rawPayload.toString('utf8');
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body, rawPayload, json: () => JSON.parse(body) as unknown });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
  checkContract(options.method ?? 'GET', options.url, response.statusCode, String(response.headers['content-type'] ?? ''), response.body);
  return response;
}

async function newDaemon(h: string, r: string, listen?: string): Promise<Daemon> {
  const vmService = await createVmService({ home: h, run: r, imageFolders: [GUESTS] });
  return createDaemon({ home: h, run: r, vmService, jobs: new JobManager({ dir: join(h, 'jobs') }), hostInfo: () => getHostInfo({ cacheDir: r }), listen });
}

before(async () => {
  const root = await mkdtemp(join(tmpdir(), 'visord-test-'));
  home = join(root, 'home');
  run = join(root, 'run');
  service = await createVmService({ home, run, imageFolders: [GUESTS] });
  jobs = new JobManager({ dir: join(home, 'jobs') });
  daemon = createDaemon({ home, run, vmService: service, jobs, hostInfo: () => getHostInfo({ cacheDir: run }), listen: '127.0.0.1:0', version: '9.9.9', webDir: fileURLToPath(new URL('../../../web', import.meta.url)) });
  await daemon.start();
});

after(async () => {
  for (const vm of service.list()) await service.delete(vm.config.id, { force: true }).catch(() => undefined);
  await daemon.close();
  await rm(join(home, '..'), { recursive: true, force: true });
  assert.ok(checkedResponses > 10, `only ${checkedResponses} responses were checked against the contract`);
});

test('every route in the contract has a handler, and the document is OpenAPI 3.1', async () => {
  for (const route of ROUTES) assert.ok(HANDLERS[route.operationId], route.operationId);
  const response = await inject({ method: 'GET', url: '/v1/openapi.json' });
  const doc = response.json() as { openapi: string; paths: Record<string, unknown> };
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/v1/vms/{ref}/start']);
});

test('the socket is private', async () => {
  assert.equal((await stat(daemon.socketPath)).mode & 0o777, 0o600);
});

test('host, daemon and images answer synchronously', async () => {
  const host = (await inject({ method: 'GET', url: '/v1/host' })).json() as { accelerator: { kind: string }; cpu: { count: number } };
  assert.equal(host.accelerator.kind, 'tcg', 'this machine has no usable KVM');
  assert.ok(host.cpu.count >= 1);
  const info = (await inject({ method: 'GET', url: '/v1/daemon' })).json() as { version: string; pid: number };
  assert.equal(info.version, '9.9.9');
  assert.equal(info.pid, process.pid);
  const images = (await inject({ method: 'GET', url: '/v1/images' })).json() as ImageInfo[];
  if (HAVE_GUEST) assert.ok(images.some((i) => i.name === 'tiny-x64'));
});

test('invalid input answers 400 problem JSON naming the field', async () => {
  const response = await inject({ method: 'POST', url: '/v1/vms', payload: { name: 'x', processorCount: 'many' } });
  assert.equal(response.statusCode, 400);
  assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
  const problem = response.json() as Record<string, unknown>;
  assert.equal(problem.kind, 'invalid');
  assert.equal(problem.field, 'processorCount');
  assert.equal(problem.status, 400);
  assert.match(String(problem.detail), /processorCount/);
  const unknownField = (await inject({ method: 'POST', url: '/v1/vms', payload: { name: 'x', cpus: 2 } })).json() as Record<string, unknown>;
  assert.equal(unknownField.code, 'unknown-field');
  const badJson = await inject({ method: 'POST', url: '/v1/vms', headers: { 'content-type': 'application/json' }, payload: '{' });
  assert.equal(badJson.statusCode, 400);
  assert.equal((badJson.json() as Record<string, unknown>).code, 'invalid-json');
  const noBody = await inject({ method: 'POST', url: '/v1/vms' });
  assert.equal((noBody.json() as Record<string, unknown>).code, 'body-required');
  const shutdown = await inject({ method: 'POST', url: '/v1/vms/x/shutdown', payload: { timeoutSeconds: 0 } });
  assert.equal(shutdown.statusCode, 400, 'timeoutSeconds must be positive');
  const badQuery = await inject({ method: 'DELETE', url: '/v1/vms/x?force=yes' });
  assert.equal(badQuery.statusCode, 400);
});

test('unknown VMs, jobs and routes answer 404 problems; no job is made for a missing VM', async () => {
  const response = await inject({ method: 'GET', url: '/v1/vms/nope' });
  assert.equal(response.statusCode, 404);
  assert.equal((response.json() as Record<string, unknown>).kind, 'not-found');
  assert.equal((await inject({ method: 'POST', url: '/v1/vms/nope/start' })).statusCode, 404);
  assert.equal((await inject({ method: 'GET', url: '/v1/jobs/nope' })).statusCode, 404);
  assert.equal((await inject({ method: 'GET', url: '/v1/nothing' })).statusCode, 404);
  const client = new VisorClient({ socketPath: daemon.socketPath });
  await assert.rejects(client.openSerial('ghost'), (e: unknown) => e instanceof VisorError && e.kind === 'not-found');
  assert.equal((await inject({ method: 'GET', url: '/v1/events' })).statusCode, 400, 'a plain GET on a WebSocket endpoint is told so');
});

test('bad creates are refused before a job is made', async () => {
  const response = await inject({ method: 'POST', url: '/v1/vms', payload: { name: 'bad1', image: 'no-such-image' } });
  assert.equal(response.statusCode, 404);
  assert.equal((response.json() as Record<string, unknown>).kind, 'not-found');
  const memory = await inject({ method: 'POST', url: '/v1/vms', payload: { name: 'bad2', startupMemory: 3 } });
  assert.equal(memory.statusCode, 400);
  assert.equal((memory.json() as Record<string, unknown>).field, 'startupMemory');
  assert.deepEqual((await inject({ method: 'GET', url: '/v1/jobs' })).json(), []);
});

test('Prefer: wait answers a quick job finished (200); without it the job is 202 Accepted', async () => {
  const waited = await inject({ method: 'POST', url: '/v1/vms', headers: { prefer: 'wait=10' }, payload: { name: 'quick1', startupMemory: 64 * MiB } });
  assert.equal(waited.statusCode, 200);
  assert.equal(waited.headers['preference-applied'], 'wait');
  const job = waited.json() as { id: string; state: string; result: { config: { name: string } } };
  assert.equal(job.state, 'succeeded');
  assert.equal(job.result.config.name, 'quick1');
  assert.equal(waited.headers.location, `/v1/jobs/${job.id}`);
  const plain = await inject({ method: 'POST', url: '/v1/vms', payload: { name: 'quick2', startupMemory: 64 * MiB } });
  assert.equal(plain.statusCode, 202);
  await service.delete('quick1', { force: false });
  await jobs.wait((plain.json() as { id: string }).id);
  await service.delete('quick2', { force: false });
});

test('TCP needs the bearer token; the token file is private', async () => {
  const tcp = daemon.tcpAddress!;
  const url = `http://${tcp.host}:${tcp.port}`;
  const anonymous = await fetch(`${url}/v1/vms`);
  assert.equal(anonymous.status, 401);
  assert.equal(((await anonymous.json()) as Record<string, unknown>).code, 'unauthorized');
  const tokenPath = join(home, 'api-token');
  assert.equal((await stat(tokenPath)).mode & 0o777, 0o600);
  const token = (await readFile(tokenPath, 'utf8')).trim();
  assert.equal((await fetch(`${url}/v1/vms`, { headers: { authorization: `Bearer ${token}x` } })).status, 401);
  const client = new VisorClient({ url, token });
  assert.ok(Array.isArray(await client.listVms()));
  const page = await fetch(`${url}/`);
  assert.equal(page.status, 200, 'the web page needs no token: it holds no data');
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  assert.equal((await fetch(`${url}/web/..%2Fpackage.json`)).status, 404);
  await assert.rejects(new VisorClient({ url }).subscribe(() => undefined), (e: unknown) => e instanceof VisorError && e.code === 'unauthorized');
  const events = await client.subscribe(() => undefined);
  events.close();
});

test('a VM through the API: create and start are jobs, actions answer the VM, serial and exec reach the guest', { skip: !HAVE_GUEST && 'guests/out/tiny-x64.vhdx is not built' }, async () => {
  const client = new VisorClient({ socketPath: daemon.socketPath });
  const events: string[] = [];
  const subscription = await client.subscribe((event) => events.push(event.type));

  const accepted = await inject({ method: 'POST', url: '/v1/vms', payload: { name: 'web1', image: 'tiny-x64', startupMemory: 128 * MiB } });
  assert.equal(accepted.statusCode, 202);
  const job = accepted.json() as { id: string; kind: string; target: string };
  assert.equal(accepted.headers.location, `/v1/jobs/${job.id}`);
  assert.equal(job.kind, 'vm-create');
  assert.equal(job.target, 'web1');
  const created = await client.waitForJob(job.id);
  const vm = jobResult<VmView>(created);
  assert.equal(vm.config.name, 'web1');
  assert.equal(((await inject({ method: 'GET', url: `/v1/jobs/${job.id}` })).json() as { state: string }).state, 'succeeded');
  assert.equal((await inject({ method: 'DELETE', url: `/v1/jobs/${job.id}` })).statusCode, 409, 'a finished job cannot be cancelled');
  await assert.rejects(client.getVm('ghost'), (e: unknown) => e instanceof VisorError && e.kind === 'not-found');

  const patched = await inject({ method: 'PATCH', url: '/v1/vms/web1', payload: { notes: 'hello' } });
  assert.equal((patched.json() as VmView).config.notes, 'hello');

  const started = await client.waitForJob(await client.startVm('web1'));
  assert.equal(jobResult<VmView>(started).state, 'running');
  await assert.rejects(client.startVm('web1'), (e: unknown) => e instanceof VisorError && e.kind === 'conflict' && /Stop it first/.test(e.hint ?? ''));

  const serial = await client.openSerial('web1');
  let output = '';
  serial.on('message', (data) => {
    output += String(data);
  });
  const deadline = Date.now() + 120_000;
  while (!output.includes('visor-42') && Date.now() < deadline) {
    serial.send(Buffer.from('echo visor-$((6*7))\n'));
    await sleep(1000);
  }
  serial.close();
  assert.match(output, /visor-42/, 'the guest\'s shell answered on the serial console');

  const exec = await inject({ method: 'POST', url: '/v1/vms/web1/exec', payload: { command: ['sh', '-c', 'echo out; exit 3'] } });
  assert.deepEqual(exec.json(), { exitCode: 3, stdout: 'out\n', stderr: '' });
  assert.equal(((await inject({ method: 'POST', url: '/v1/vms/web1/pause' })).json() as VmView).state, 'paused');
  assert.equal(((await inject({ method: 'POST', url: '/v1/vms/web1/resume' })).json() as VmView).state, 'running');
  const shot = await inject({ method: 'GET', url: '/v1/vms/web1/screenshot' });
  assert.equal(shot.headers['content-type'], 'image/png');
  assert.equal(shot.rawPayload.subarray(1, 4).toString(), 'PNG');
  assert.equal((await inject({ method: 'DELETE', url: '/v1/vms/web1' })).statusCode, 409, 'a running VM is not deleted without force');
  assert.equal(((await inject({ method: 'POST', url: '/v1/vms/web1/turn-off' })).json() as VmView).state, 'off');
  assert.equal((await inject({ method: 'DELETE', url: '/v1/vms/web1' })).statusCode, 204);

  subscription.close();
  await subscription.closed;
  for (const type of ['job-state', 'vm-created', 'vm-state', 'vm-updated', 'vm-deleted']) assert.ok(events.includes(type), `${type} in ${events.join(',')}`);
});

test('a second daemon on the same socket refuses to start; a stale socket is replaced', async () => {
  const second = await newDaemon(join(home, '..', 'home2'), run);
  await assert.rejects(second.start(), (e: unknown) => e instanceof VisorError && e.code === 'daemon-running');
  await second.close();
  assert.ok((await stat(daemon.socketPath)).isSocket(), 'the refusal left the running daemon\'s socket alone');

  // A socket file nobody answers on, as a killed daemon leaves it: bind, move, close.
  const staleRun = join(home, '..', 'stale-run');
  await mkdir(staleRun, { recursive: true });
  const stale = createNetServer();
  await new Promise<void>((resolve) => stale.listen(join(home, '..', 'stale.sock'), resolve));
  await rename(join(home, '..', 'stale.sock'), join(staleRun, 'visord.sock'));
  await new Promise((resolve) => stale.close(resolve));
  const third = await newDaemon(join(home, '..', 'home3'), staleRun);
  await third.start();
  assert.equal((await new VisorClient({ socketPath: third.socketPath }).daemon()).pid, process.pid);
  await third.close();
  await assert.rejects(stat(third.socketPath), /ENOENT/);

  await writeFile(join(staleRun, 'visord.sock'), 'not a socket');
  const fourth = await newDaemon(join(home, '..', 'home4'), staleRun);
  await assert.rejects(fourth.start(), (e: unknown) => e instanceof VisorError && e.code === 'socket-path-taken');
  await fourth.close();
});
