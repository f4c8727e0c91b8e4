import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VisorClient } from '../api/index.js';
import { formatUptime } from './output.js';

const VISOR = fileURLToPath(new URL('../../../bin/visor', import.meta.url));
const GUESTS = fileURLToPath(new URL('../../../guests/out', import.meta.url));
const HAVE_GUEST = existsSync(join(GUESTS, 'tiny-x64.vhdx'));

let root = '';
let env: NodeJS.ProcessEnv = {};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function visor(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(VISOR, args, { env, timeout: 120_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'visor-cli-'));
  env = { ...process.env, VISOR_HOME: join(root, 'home'), VISOR_RUN: join(root, 'run'), VISOR_IMAGE_PATH: GUESTS, VISOR_NODE: process.execPath };
});

after(async () => {
  const socketPath = join(root, 'run', 'visord.sock');
  if (existsSync(socketPath)) {
    const client = new VisorClient({ socketPath });
    for (const vm of await client.listVms().catch(() => [])) await client.deleteVm(vm.config.id, { force: true }).catch(() => undefined);
    const { pid } = await client.daemon();
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && existsSync(socketPath); i += 1) await new Promise((r) => setTimeout(r, 50));
  }
  await rm(root, { recursive: true, force: true });
});

test('the first command starts a daemon for the instance; it logs to $VISOR_RUN/visord.log', async () => {
  const first = await visor('vm', 'list');
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /No VMs/);
  assert.equal((await stat(join(root, 'run', 'visord.sock'))).mode & 0o777, 0o600);
  assert.match(await readFile(join(root, 'run', 'visord.log'), 'utf8'), /listening on/);
  const json = await visor('vm', 'list', '--json');
  assert.deepEqual(JSON.parse(json.stdout), []);
});

test('exit codes and messages: not found 3, invalid 2, usage 2, with error and hint lines', async () => {
  const missing = await visor('vm', 'show', 'ghost');
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /^error: .*ghost/m);
  assert.match(missing.stderr, /^hint: /m);
  const invalid = await visor('vm', 'create', 'x', '--memory', '12XB');
  assert.equal(invalid.code, 2);
  assert.match(invalid.stderr, /error: --memory is not a size: current value is "12XB"/);
  assert.equal((await visor('vm', 'frobnicate')).code, 2);
  assert.equal((await visor('vm', 'create')).code, 2);
  const help = await visor('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Exit codes:[\s\S]*130/);
});

test('host info and image list answer, as text and as JSON', async () => {
  const host = await visor('host', 'info', '--json');
  assert.equal(host.code, 0, host.stderr);
  assert.equal(typeof JSON.parse(host.stdout), 'object');
  const images = await visor('image', 'list');
  assert.equal(images.code, 0, images.stderr);
  if (HAVE_GUEST) assert.match(images.stdout, /^tiny-x64\s/m);
});

test('a VM from the CLI: create, show, start, conflict, stop --force, delete', { skip: !HAVE_GUEST && 'guests/out/tiny-x64.vhdx is not built' }, async () => {
  const created = await visor('vm', 'create', 'cli1', '--image', 'tiny-x64', '--memory', '128M', '--notes', 'from the CLI', '--json');
  assert.equal(created.code, 0, created.stderr);
  assert.equal(JSON.parse(created.stdout).config.name, 'cli1');
  const show = await visor('vm', 'show', 'cli1');
  assert.match(show.stdout, /^Memory:\s+128M$/m);
  assert.match(show.stdout, /^Notes:\s+from the CLI$/m);
  const start = await visor('vm', 'start', 'cli1');
  assert.equal(start.code, 0, start.stderr);
  assert.match(start.stdout, /is running/);
  const again = await visor('vm', 'start', 'cli1');
  assert.equal(again.code, 4);
  assert.match(again.stderr, /hint: Stop it first/);
  const list = await visor('vm', 'list');
  assert.match(list.stdout, /^cli1\s+running\s+1\s+128M\s+1\s/m);
  const busy = await visor('vm', 'delete', 'cli1');
  assert.equal(busy.code, 4);
  const off = await visor('vm', 'stop', 'cli1', '--force');
  assert.equal(off.code, 0, off.stderr);
  assert.match(off.stdout, /is off/);
  const jobs = JSON.parse((await visor('job', 'list', '--json')).stdout) as Array<{ kind: string; state: string }>;
  assert.ok(jobs.some((j) => j.kind === 'vm-start' && j.state === 'succeeded'));
  assert.equal((await visor('vm', 'delete', 'cli1')).code, 0);
  assert.equal((await visor('vm', 'show', 'cli1')).code, 3);
});

test('uptime reads the way people say it', () => {
  const now = Date.parse('2026-01-02T00:00:00Z');
  assert.equal(formatUptime(null, now), '-');
  assert.equal(formatUptime('2026-01-01T23:59:20Z', now), '40s');
  assert.equal(formatUptime('2026-01-01T23:56:48Z', now), '3m 12s');
  assert.equal(formatUptime('2026-01-01T21:55:00Z', now), '2h 05m');
  assert.equal(formatUptime('2025-12-30T22:00:00Z', now), '2d 02h');
});
