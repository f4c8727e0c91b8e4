import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { mkdtemp, rm, stat, writeFile, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { VisorError, newId } from '../core/index.js';
import type { ExecResult, ExecSpec, ImageInfo, OperationContext, VmCreateSpec, VmUpdateSpec, VmView } from '../core/index.js';
import type { VmEvents, VmService } from '../vms/index.js';
// Past vms/index on purpose, until host/ lands: the index loads the real service.
import { buildVmConfig } from '../vms/build-config.js';
import { JobManager } from '../jobs/index.js';
import { ROUTES, buildOpenApiDocument } from '../api/contract/index.js';
import { VisorClient, jobResult } from '../api/index.js';
import { createDaemon, type Daemon } from './daemon.js';
import { HANDLERS } from './app.js';

// ---------------------------------------------------------------------------------------------
// A stand-in VM service until the real one is wired into these tests: in memory, no QEMU.

class MemoryVmService implements VmService {
  readonly events = new EventEmitter<VmEvents>();
  readonly vms = new Map<string, VmView>();
  serialPath = '';
  recovered = false;
  closed = false;

  list(): VmView[] {
    return [...this.vms.values()];
  }
  get(ref: string): VmView {
    const vm = this.vms.get(ref) ?? this.list().find((v) => v.config.name === ref);
    if (!vm) throw new VisorError('not-found', 'vm-not-found', `No VM named "${ref}" exists.`, { hint: 'List VMs with "visor vm list".' });
    return vm;
  }
  async create(spec: VmCreateSpec, ctx: OperationContext): Promise<VmView> {
    ctx.progress(0.5, 'Copying disk');
    await sleep(5);
    const config = buildVmConfig(spec, {
      id: newId(),
      now: new Date(),
      host: { logicalCpus: 4, totalMemory: 8 * 2 ** 30 },
      existing: this.list().map((v) => v.config),
      randomBytes: (n) => randomBytes(n),
      bootDisk: null,
      qemuVersion: null,
      imageGenerations: null,
      sourceImage: null,
    });
    const view: VmView = { config, state: 'off', stateReason: null, pid: null, runningSince: null, savedAt: null };
    this.vms.set(config.id, view);
    this.events.emit('vm-created', { vmId: config.id, name: config.name });
    return view;
  }
  async update(ref: string, spec: VmUpdateSpec): Promise<VmView> {
    const vm = this.get(ref);
    if (spec.notes !== undefined) vm.config.notes = spec.notes;
    return vm;
  }
  async delete(ref: string): Promise<void> {
    const vm = this.get(ref);
    this.vms.delete(vm.config.id);
  }
  private setState(ref: string, state: VmView['state']): VmView {
    const vm = this.get(ref);
    vm.state = state;
    this.events.emit('vm-state', { vmId: vm.config.id, name: vm.config.name, state, reason: null });
    return vm;
  }
  async start(ref: string, ctx: OperationContext): Promise<VmView> {
    if (this.get(ref).state !== 'off') throw new VisorError('conflict', 'invalid-state', 'Cannot start: it is running.');
    if (this.get(ref).config.notes === 'slow') {
      await new Promise((_, reject) => {
        if (ctx.signal.aborted) reject(ctx.signal.reason);
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
      });
    }
    return this.setState(ref, 'running');
  }
  async shutDown(ref: string): Promise<VmView> {
    return this.setState(ref, 'off');
  }
  async turnOff(ref: string): Promise<VmView> {
    return this.setState(ref, 'off');
  }
  async save(ref: string): Promise<VmView> {
    return this.setState(ref, 'saved');
  }
  async pause(ref: string): Promise<VmView> {
    return this.setState(ref, 'paused');
  }
  async resume(ref: string): Promise<VmView> {
    return this.setState(ref, 'running');
  }
  async restart(ref: string): Promise<VmView> {
    return this.get(ref);
  }
  async exec(ref: string, spec: ExecSpec): Promise<ExecResult> {
    this.get(ref);
    return { exitCode: 3, stdout: spec.command.join(' '), stderr: '' };
  }
  async screenshot(ref: string): Promise<Buffer> {
    this.get(ref);
    return Buffer.from('89504e470d0a1a0a', 'hex');
  }
  serialSocketPath(ref: string): string {
    this.get(ref);
    return this.serialPath;
  }
  vncSocketPath(ref: string): string {
    this.get(ref);
    return '';
  }
  async images(): Promise<ImageInfo[]> {
    return [
      {
        name: 'tiny-x64',
        description: 'A tiny test guest',
        architecture: 'x86_64',
        format: 'qcow2',
        path: '/nowhere/tiny-x64.qcow2',
        size: 1024,
        virtualSize: 2 ** 30,
        generations: [1, 2],
        readyLine: 'tiny ready',
      },
    ];
  }
  async recover(): Promise<void> {
    this.recovered = true;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

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
let service: MemoryVmService;
let jobs: JobManager;
let daemon: Daemon;

async function inject(options: InjectOptions): Promise<LightMyRequestResponse> {
  const { fastify } = await daemon.app;
  const response = await fastify.inject(options);
  checkContract(options.method ?? 'GET', String(options.url), response.statusCode, String(response.headers['content-type'] ?? ''), response.body);
  return response;
}

before(async () => {
  const root = await mkdtemp(join(tmpdir(), 'visord-test-'));
  home = join(root, 'home');
  run = join(root, 'run');
  service = new MemoryVmService();
  jobs = new JobManager({ dir: join(home, 'jobs') });
  daemon = createDaemon({ home, run, vmService: service, jobs, hostInfo: () => ({ accelerator: 'tcg', logicalCpus: 4 }), listen: '127.0.0.1:0', version: '9.9.9' });
  await daemon.start();
});

after(async () => {
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

test('start-up recovered the VMs; the socket is private', async () => {
  assert.equal(service.recovered, true);
  assert.equal((await stat(daemon.socketPath)).mode & 0o777, 0o600);
});

test('host, daemon and images answer synchronously', async () => {
  assert.deepEqual((await inject({ method: 'GET', url: '/v1/host' })).json(), { accelerator: 'tcg', logicalCpus: 4 });
  const info = (await inject({ method: 'GET', url: '/v1/daemon' })).json() as { version: string; pid: number };
  assert.equal(info.version, '9.9.9');
  assert.equal(info.pid, process.pid);
  const images = (await inject({ method: 'GET', url: '/v1/images' })).json() as ImageInfo[];
  assert.equal(images[0]?.name, 'tiny-x64');
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
});

test('unknown VMs and routes answer 404 problems', async () => {
  const response = await inject({ method: 'GET', url: '/v1/vms/nope' });
  assert.equal(response.statusCode, 404);
  assert.equal((response.json() as Record<string, unknown>).code, 'vm-not-found');
  const job = await inject({ method: 'POST', url: '/v1/vms/nope/start' });
  assert.equal(job.statusCode, 404, 'no job is made for a VM that does not exist');
  assert.equal((await inject({ method: 'GET', url: '/v1/nothing' })).statusCode, 404);
});

test('create is a job: 202 with a Location, then the job succeeds with the VM', async () => {
  const response = await inject({ method: 'POST', url: '/v1/vms', payload: { name: 'web1', startupMemory: 256 * 2 ** 20 } });
  assert.equal(response.statusCode, 202);
  const job = response.json() as { id: string; kind: string; target: string; state: string };
  assert.equal(response.headers.location, `/v1/jobs/${job.id}`);
  assert.equal(job.kind, 'vm-create');
  assert.equal(job.target, 'web1');
  await jobs.wait(job.id);
  const done = (await inject({ method: 'GET', url: `/v1/jobs/${job.id}` })).json() as { state: string; result: VmView };
  assert.equal(done.state, 'succeeded');
  assert.equal(done.result.config.name, 'web1');
  const list = (await inject({ method: 'GET', url: '/v1/vms' })).json() as VmView[];
  assert.deepEqual(list.map((v) => v.config.name), ['web1']);
  const cancel = await inject({ method: 'DELETE', url: `/v1/jobs/${job.id}` });
  assert.equal(cancel.statusCode, 409);
  const jobsList = (await inject({ method: 'GET', url: '/v1/jobs' })).json() as unknown[];
  assert.ok(jobsList.length >= 1);
});

test('synchronous actions answer the VM; delete answers 204', async () => {
  await service.create({ name: 'sync1' }, { signal: new AbortController().signal, progress: () => undefined });
  const paused = await inject({ method: 'POST', url: '/v1/vms/sync1/pause' });
  assert.equal((paused.json() as VmView).state, 'paused');
  const patched = await inject({ method: 'PATCH', url: '/v1/vms/sync1', payload: { notes: 'hello' } });
  assert.equal((patched.json() as VmView).config.notes, 'hello');
  const exec = await inject({ method: 'POST', url: '/v1/vms/sync1/exec', payload: { command: ['echo', 'hi'] } });
  assert.deepEqual(exec.json(), { exitCode: 3, stdout: 'echo hi', stderr: '' });
  const shot = await inject({ method: 'GET', url: '/v1/vms/sync1/screenshot' });
  assert.equal(shot.headers['content-type'], 'image/png');
  const shutdown = await inject({ method: 'POST', url: '/v1/vms/sync1/shutdown', payload: { timeoutSeconds: 0 } });
  assert.equal(shutdown.statusCode, 400, 'timeoutSeconds must be positive');
  const deleted = await inject({ method: 'DELETE', url: '/v1/vms/sync1?force=true' });
  assert.equal(deleted.statusCode, 204);
  const badQuery = await inject({ method: 'DELETE', url: '/v1/vms/sync1?force=yes' });
  assert.equal(badQuery.statusCode, 400);
});

test('TCP needs the bearer token; the token file is private', async () => {
  const tcp = daemon.tcpAddress!;
  const url = `http://${tcp.host}:${tcp.port}`;
  const anonymous = await fetch(`${url}/v1/vms`);
  assert.equal(anonymous.status, 401);
  const problem = (await anonymous.json()) as Record<string, unknown>;
  assert.equal(problem.code, 'unauthorized');
  const tokenPath = join(home, 'api-token');
  assert.equal((await stat(tokenPath)).mode & 0o777, 0o600);
  const token = (await readFile(tokenPath, 'utf8')).trim();
  const wrong = await fetch(`${url}/v1/vms`, { headers: { authorization: `Bearer ${token}x` } });
  assert.equal(wrong.status, 401);
  const client = new VisorClient({ url, token });
  assert.ok(Array.isArray(await client.listVms()));
  await assert.rejects(new VisorClient({ url }).subscribe(() => undefined), (e: unknown) => e instanceof VisorError && e.code === 'unauthorized');
  const events = await client.subscribe(() => undefined);
  events.close();
});

test('the client over the unix socket: errors come back as VisorErrors, jobs are followed to the end', async () => {
  const client = new VisorClient({ socketPath: daemon.socketPath });
  await assert.rejects(client.getVm('ghost'), (e: unknown) => e instanceof VisorError && e.kind === 'not-found' && e.hint === 'List VMs with "visor vm list".');
  const updates: string[] = [];
  const job = await client.createVm({ name: 'db1' });
  const done = await client.waitForJob(job, { onUpdate: (j) => updates.push(j.state) });
  assert.equal(done.state, 'succeeded');
  assert.equal(updates.at(-1), 'succeeded');
  assert.equal(jobResult<VmView>(done).config.name, 'db1');
  const started = await client.waitForJob(await client.startVm('db1'));
  assert.equal(jobResult<VmView>(started).state, 'running');
  const again = await client.waitForJob(await client.startVm('db1'));
  assert.throws(() => jobResult(again), (e: unknown) => e instanceof VisorError && e.kind === 'conflict');
});

test('cancelling a running job ends it cancelled', async () => {
  const client = new VisorClient({ socketPath: daemon.socketPath });
  await client.waitForJob(await client.createVm({ name: 'slow1', notes: 'slow' }));
  const job = await client.startVm('slow1');
  const waiting = client.waitForJob(job);
  await sleep(20);
  await client.cancelJob(job.id);
  const done = await waiting;
  assert.equal(done.state, 'cancelled');
  assert.throws(() => jobResult(done), (e: unknown) => e instanceof VisorError && e.kind === 'cancelled');
});

test('the event stream carries VM and job events', async () => {
  const client = new VisorClient({ socketPath: daemon.socketPath });
  const seen: string[] = [];
  const subscription = await client.subscribe((event) => seen.push(event.type));
  await client.waitForJob(await client.createVm({ name: 'ev1' }));
  await client.pauseVm('ev1').catch(() => undefined);
  await sleep(20);
  subscription.close();
  await subscription.closed;
  for (const type of ['job-state', 'job-progress', 'vm-created', 'vm-state']) assert.ok(seen.includes(type), `${type} in ${seen.join(',')}`);
});

test('the serial WebSocket bridges raw bytes both ways', async () => {
  const path = join(run, 'serial-test.sock');
  const received: Buffer[] = [];
  const console: NetServer = createNetServer((socket) => {
    socket.write('login: ');
    socket.on('data', (chunk) => received.push(chunk));
  });
  await new Promise<void>((resolve) => console.listen(path, resolve));
  service.serialPath = path;
  const client = new VisorClient({ socketPath: daemon.socketPath });
  await client.waitForJob(await client.createVm({ name: 'serial1' }));
  const socket = await client.openSerial('serial1');
  const first = await new Promise<Buffer>((resolve) => socket.once('message', (data) => resolve(data as Buffer)));
  assert.equal(first.toString(), 'login: ');
  socket.send(Buffer.from([0x72, 0x6f, 0x6f, 0x74, 0x0d]));
  await sleep(50);
  assert.equal(Buffer.concat(received).toString(), 'root\r');
  socket.close();
  await new Promise((resolve) => console.close(resolve));
  await assert.rejects(client.openSerial('ghost'), (e: unknown) => e instanceof VisorError && e.kind === 'not-found');
});

test('a second daemon on the same socket refuses to start; a stale socket is replaced', async () => {
  const second = createDaemon({ home, run, vmService: new MemoryVmService(), jobs: new JobManager({ dir: join(home, 'jobs2') }), hostInfo: () => ({}) });
  await assert.rejects(second.start(), (e: unknown) => e instanceof VisorError && e.code === 'daemon-running');
  await second.close();
  assert.ok((await stat(daemon.socketPath)).isSocket(), 'the refusal left the running daemon\'s socket alone');

  const staleRun = join(home, '..', 'stale-run');
  const stale = createNetServer();
  await new Promise<void>((resolve) => stale.listen(join(staleRun.replace(/stale-run$/, ''), 'stale.sock'), resolve));
  // A socket file nobody answers on: bind, then close without unlinking (as a killed daemon leaves it).
  const { mkdir, rename } = await import('node:fs/promises');
  await mkdir(staleRun, { recursive: true });
  await rename(join(home, '..', 'stale.sock'), join(staleRun, 'visord.sock'));
  await new Promise((resolve) => stale.close(resolve));
  const third = createDaemon({ home, run: staleRun, vmService: new MemoryVmService(), jobs: new JobManager({ dir: join(home, 'jobs3') }), hostInfo: () => ({}) });
  await third.start();
  const info = await new VisorClient({ socketPath: third.socketPath }).daemon();
  assert.equal(info.pid, process.pid);
  await third.close();
  await assert.rejects(stat(third.socketPath), /ENOENT/);
  await writeFile(join(staleRun, 'visord.sock'), 'not a socket');
  const fourth = createDaemon({ home, run: staleRun, vmService: new MemoryVmService(), jobs: new JobManager({ dir: join(home, 'jobs4') }), hostInfo: () => ({}) });
  await assert.rejects(fourth.start(), (e: unknown) => e instanceof VisorError && e.code === 'socket-path-taken');
  await fourth.close();
});
