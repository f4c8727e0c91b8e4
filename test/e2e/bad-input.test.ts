import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmView } from '../../src/core/index.js';
import { VisorTestHost } from '../support/visor-host.js';

/** Every file under a folder with its size and mtime: "nothing is written" made checkable. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) {
    const path = join(entry.parentPath, entry.name);
    const s = await stat(path);
    out.push(`${path} ${s.size} ${s.mtimeMs}`);
  }
  return out.sort();
}

function post(socketPath: string, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test('bad input is refused with the field named, and nothing is written', { timeout: 120_000 }, async (t) => {
  const host = await VisorTestHost.create();
  t.after(() => host.dispose());
  await host.startDaemon();
  const first = await host.json<VmView>(['vm', 'create', 'first', '--image', 'tiny-x64', '--memory', '128M']);
  const mac = first.config.networkAdapters[0]!.mac;
  const before = await snapshot(join(host.home, 'vms'));

  const cases: { what: string; args: string[]; field: RegExp; code: number }[] = [
    { what: 'a size like 12XB', args: ['--memory', '12XB'], field: /memory|startupMemory/, code: 2 },
    { what: '0 vCPUs', args: ['--cpus', '0'], field: /processorCount|cpus/, code: 2 },
    { what: '100000 vCPUs', args: ['--cpus', '100000'], field: /processorCount|cpus/, code: 2 },
    { what: 'more memory than the host has', args: ['--memory', '4T'], field: /startupMemory|memory/, code: 2 },
    { what: 'a missing ISO', args: ['--dvd', '/nonexistent/install.iso'], field: /dvd/, code: 2 },
    { what: 'an unknown image', args: ['--image', 'no-such-image'], field: /image/, code: 3 },
    { what: 'generation 3', args: ['--generation', '3'], field: /generation/, code: 2 },
    { what: 'a missing template disk', args: ['--image', '/nonexistent/gold.vhdx', '--differencing'], field: /template/, code: 3 },
    { what: 'a differencing disk with no parent', args: ['--differencing', '--disk-size', '1G'], field: /--image/, code: 2 },
  ];
  for (const c of cases) {
    await t.test(`refuses ${c.what}`, async () => {
      const args = c.args.includes('--image') || c.args.includes('--disk-size') ? c.args : ['--image', 'tiny-x64', ...c.args];
      const result = await host.cli(['vm', 'create', 'second', ...args]);
      assert.equal(result.code, c.code, `exit code for ${c.what}: ${result.stderr}`);
      assert.match(result.stderr, /error: /);
      assert.match(result.stderr, c.field, `the message names the field: ${result.stderr}`);
    });
  }

  await t.test('refuses a duplicate name', async () => {
    const result = await host.cli(['vm', 'create', 'first', '--image', 'tiny-x64']);
    assert.equal(result.code, 4);
    assert.match(result.stderr, /already exists/);
  });

  const socket = join(host.run, 'visord.sock');
  await t.test('the API refuses unknown fields and names them', async () => {
    const res = await post(socket, '/v1/vms', { name: 'second', image: 'tiny-x64', colour: 'blue' });
    assert.equal(res.status, 400);
    assert.equal(res.body.field, 'colour');
    assert.match(String(res.body.detail), /colour/);
  });

  await t.test('the API refuses a differencing child in a format other than qcow2', async () => {
    const res = await post(socket, '/v1/vms', { name: 'second', image: 'tiny-x64', differencing: true, diskFormat: 'vhdx' });
    assert.equal(res.status, 400);
    assert.equal(res.body.field, 'diskFormat');
  });

  await t.test('the API refuses a duplicate MAC and names the owner', async () => {
    const res = await post(socket, '/v1/vms', { name: 'second', image: 'tiny-x64', networkAdapters: [{ mac }] });
    assert.equal(res.status, 409);
    assert.equal(res.body.field, 'networkAdapters.0.mac');
    assert.match(String(res.body.detail), /"first"/);
  });

  await t.test('nothing was written by any refused request', async () => {
    assert.deepEqual(await snapshot(join(host.home, 'vms')), before);
    const list = await host.json<VmView[]>(['vm', 'list']);
    assert.deepEqual(list.map((v) => v.config.name), ['first']);
  });

  await t.test('illegal transitions are refused with advice', async () => {
    const result = await host.cli(['vm', 'pause', 'first']);
    assert.equal(result.code, 4);
    assert.match(result.stderr, /Cannot pause VM "first": it is off/);
    assert.match(result.stderr, /visor vm start first/);
  });
});
