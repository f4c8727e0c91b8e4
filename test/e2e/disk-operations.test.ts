import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VisorClient } from '../../src/api/index.js';
import type { DiskInfo } from '../../src/core/index.js';
import { VISOR_BIN, VisorTestHost } from '../support/visor-host.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

const gone = (path: string): Promise<boolean> => stat(path).then(() => false, () => true);

test('visor disk: new, inspect, convert a chain, resize, merge, compact; bad input refused before a job; a cancelled convert leaves nothing', { timeout: 120_000 }, async (t) => {
  const host = await VisorTestHost.create();
  t.after(() => host.dispose());
  await host.startDaemon();
  const dir = join(host.home, 'disks-under-test');
  await run('mkdir', ['-p', dir]);
  const p = (name: string): string => join(dir, name);

  await t.test('new and inspect', async () => {
    const base = await host.json<DiskInfo>(['disk', 'new', p('base.vhdx'), '--size', '16M']);
    assert.equal(base.format, 'vhdx');
    assert.equal(base.type, 'dynamic');
    assert.equal(base.virtualSize, 16 * MiB);
    // Data in the base through QEMU (it opens a standalone VHDX), then a child on top.
    await run('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0x11 0 1M', p('base.vhdx')]);
    const child = await host.json<DiskInfo>(['disk', 'new', p('child.avhdx'), '--parent', p('base.vhdx')]);
    assert.equal(child.type, 'differencing');
    const shown = await host.cli(['disk', 'inspect', p('child.avhdx')]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /Type:\s+differencing/);
    assert.match(shown.stdout, new RegExp(`Parents:\\s+vhdx\\s+${p('base.vhdx')}`));
    assert.match(shown.stdout, /Health:\s+ok/);
  });

  await t.test('a differencing chain converts to a standalone qcow2 that QEMU reads', async () => {
    const q = await host.json<DiskInfo>(['disk', 'convert', p('child.avhdx'), p('flat.qcow2')]);
    assert.equal(q.format, 'qcow2');
    assert.deepEqual(q.parents, []);
    await run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', p('flat.qcow2'), p('flat.raw')]);
    const bytes = await readFile(p('flat.raw'));
    assert.ok(bytes.subarray(0, MiB).equals(Buffer.alloc(MiB, 0x11)));
    assert.ok(bytes.subarray(MiB).equals(Buffer.alloc(15 * MiB)));
    await rm(p('flat.raw'));
    assert.equal((await host.json<DiskInfo>(['disk', 'resize', p('flat.qcow2'), '--size', '32M'])).virtualSize, 32 * MiB);
  });

  await t.test('merge writes the child into its parent; compact runs', async () => {
    const parent = await host.json<DiskInfo>(['disk', 'merge', p('child.avhdx')]);
    assert.equal(parent.path, p('base.vhdx'));
    assert.ok(await gone(p('child.avhdx')));
    const compacted = await host.json<DiskInfo>(['disk', 'compact', p('base.vhdx')]);
    assert.equal(compacted.health.ok, true);
  });

  await t.test('bad input is refused before a job', async () => {
    const before = (await host.json<unknown[]>(['job', 'list'])).length;
    const cases: Array<[string[], number, RegExp]> = [
      [['disk', 'new', p('x.vhdx')], 2, /--size/],
      [['disk', 'new', p('base.vhdx'), '--size', '1G'], 4, /already exists/],
      [['disk', 'convert', p('none.vhdx'), p('y.qcow2')], 3, /No disk exists/],
      [['disk', 'merge', p('base.vhdx')], 2, /not a differencing disk/],
      [['disk', 'new', '/no/such/folder/d.vhdx', '--size', '1G'], 3, /No folder/],
    ];
    for (const [args, code, message] of cases) {
      const r = await host.cli(args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.equal((await host.json<unknown[]>(['job', 'list'])).length, before, 'no job was made');
  });

  await t.test('a cancelled convert ends cancelled and removes its partial output', async () => {
    // 768 MiB of non-zero data: long enough to cancel in the middle.
    const fh = await open(p('big.raw'), 'w');
    const chunk = Buffer.alloc(16 * MiB, 0x5a);
    for (let i = 0; i < 48; i++) await fh.write(chunk, 0, chunk.length, i * chunk.length);
    await fh.close();
    // No Prefer: wait: the test cancels or kills the job while it runs.
    const client = new VisorClient({ socketPath: join(host.run, 'visord.sock'), preferWaitSeconds: 0 });
    const job = await client.convertDisk({ path: p('big.raw'), destination: p('big.vhdx'), format: 'vhdx' });
    await client.cancelJob(job.id);
    const done = await client.waitForJob(job);
    assert.equal(done.state, 'cancelled');
    assert.ok(await gone(p('big.vhdx')), 'no partial output is left');
  });

  await t.test('Ctrl-C in the CLI while its request still waits for the job cancels the job', async () => {
    // Twice the data: the convert outlasts the second the request waits for a quick job.
    const fh = await open(p('big.raw'), 'a');
    const chunk = Buffer.alloc(16 * MiB, 0xa5);
    for (let i = 48; i < 96; i++) await fh.write(chunk, 0, chunk.length, i * chunk.length);
    await fh.close();
    const child = spawn(VISOR_BIN, ['disk', 'convert', p('big.raw'), p('big.qcow2')], { env: host.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise((r) => setTimeout(r, 150));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /Cancelling job/);
    const jobs = await host.json<Array<{ kind: string; target: string; state: string }>>(['job', 'list']);
    const converts = jobs.filter((j) => j.kind === 'disk-convert' && j.target === p('big.raw'));
    assert.deepEqual(converts.map((j) => j.state), ['cancelled', 'cancelled'], 'this one and the one before');
    assert.ok(await gone(p('big.qcow2')), 'no partial output is left');
    await rm(p('big.raw'));
  });
});
