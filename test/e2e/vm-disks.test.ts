import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { DiskAttachment, VmView } from '../../src/core/index.js';
import { VisorTestHost, eventually } from '../support/visor-host.js';

const MiB = 1024 * 1024;
const run = promisify(execFile);

/**
 * A VM's disks and DVD through the CLI, on one booted guest: disks on IDE, SCSI and virtio
 * (attached while off) are all seen by the guest, each by the marker the host wrote into it; a
 * SCSI disk hot-added while it runs appears without a reboot and goes on hot-remove; IDE is
 * refused while running; the DVD is ejected and re-inserted live.
 */
test('disks on IDE, SCSI and virtio; SCSI hot-add and remove; DVD eject and insert while running', { timeout: 300_000 }, async (t) => {
  const host = await VisorTestHost.create();
  t.after(() => host.dispose());
  await host.startDaemon();
  const dir = join(host.home, 'user-disks');
  await mkdir(dir, { recursive: true });
  const p = (name: string): string => join(dir, name);

  /** A raw file of `size` bytes that starts with `marker` (12 bytes). */
  const markedRaw = async (name: string, marker: string, size: number): Promise<string> => {
    await writeFile(p(name), marker);
    await truncate(p(name), size);
    return p(name);
  };
  const exec = async (...command: string[]): Promise<string> => {
    const r = await host.cli(['vm', 'exec', 'g', '--', ...command]);
    assert.equal(r.code, 0, `exec ${command.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  /** Every block device the guest has, with its size in sectors and its first 12 bytes. */
  const guestDisks = (): Promise<string> =>
    exec('sh', '-c', 'for d in /sys/block/sd* /sys/block/vd*; do [ -e "$d" ] || continue; n=${d##*/}; echo "$n $(cat $d/size) $(head -c 12 /dev/$n)"; done');

  let id = '';
  await t.test('disks are attached while off: IDE (vhdx), virtio (qcow2), SCSI (a new disk and a raw file)', async () => {
    const vm = await host.json<VmView>(['vm', 'create', 'g', '--image', 'tiny-x64', '--memory', '192M']);
    id = vm.config.id;
    await markedRaw('ide.raw', 'VISOR-IDE-01', 3 * MiB);
    assert.equal((await host.cli(['disk', 'convert', p('ide.raw'), p('ide.vhdx')])).code, 0);
    await markedRaw('virtio.raw', 'VISOR-VIO-01', 5 * MiB);
    assert.equal((await host.cli(['disk', 'convert', p('virtio.raw'), p('virtio.qcow2')])).code, 0);
    await markedRaw('scsi.raw', 'VISOR-SCS-01', 7 * MiB);

    const ide = await host.json<DiskAttachment>(['vm', 'disk', 'add', 'g', '--path', p('ide.vhdx'), '--controller', 'ide']);
    assert.deepEqual([ide.controller, ide.controllerNumber, ide.location], ['ide', 0, 1], 'the first free IDE slot');
    await host.json(['vm', 'disk', 'add', 'g', '--path', p('virtio.qcow2'), '--controller', 'virtio']);
    await host.json(['vm', 'disk', 'add', 'g', '--path', p('scsi.raw'), '--controller', 'scsi']);
    const made = await host.json<DiskAttachment>(['vm', 'disk', 'add', 'g', '--size', '6M']);
    assert.equal(made.controller, 'scsi');
    assert.equal(made.format, 'vhdx');
    assert.ok(made.path.startsWith(join(host.home, 'vms', id)), made.path);

    const listed = await host.json<DiskAttachment[]>(['vm', 'disk', 'list', 'g']);
    assert.equal(listed.length, 5);

    // Refusals, before anything changes.
    const again = await host.cli(['vm', 'disk', 'add', 'g', '--path', p('ide.vhdx')]);
    assert.equal(again.code, 4, again.stderr);
    assert.match(again.stderr, /already attached/);
    await host.cli(['disk', 'new', p('child.avhdx'), '--parent', p('ide.vhdx')]);
    const child = await host.cli(['vm', 'disk', 'add', 'g', '--path', p('child.avhdx')]);
    assert.equal(child.code, 2, child.stderr);
    assert.match(child.stderr, /differencing[\s\S]*visor disk convert/);
  });

  await t.test('the guest sees every disk, each by its marker', async () => {
    assert.equal((await host.cli(['vm', 'start', 'g'])).code, 0);
    await host.waitForSerial(id, /VISOR-GUEST-READY/, 180_000);
    const seen = await eventually(async () => {
      const out = await guestDisks();
      return /VISOR-IDE-01/.test(out) && /VISOR-VIO-01/.test(out) && /VISOR-SCS-01/.test(out) && / 12288 /.test(out) ? out : undefined;
    }, 'the guest to see its disks', 30_000);
    assert.match(seen, /^sd\w+ 6144 VISOR-IDE-01/m);
    assert.match(seen, /^vd\w+ 10240 VISOR-VIO-01/m);
    assert.match(seen, /^sd\w+ 14336 VISOR-SCS-01/m);
    // A disk a running VM uses is not touched by disk operations.
    const busy = await host.cli(['disk', 'resize', p('virtio.qcow2'), '--size', '16M']);
    assert.equal(busy.code, 4, busy.stderr);
    assert.match(busy.stderr, /VM "g" is running/);
  });

  let hot = '';
  await t.test('a SCSI disk hot-added appears in the guest without a reboot, and goes on hot-remove', async () => {
    await markedRaw('hot.raw', 'VISOR-HOT-01', 9 * MiB);
    await host.cli(['disk', 'convert', p('hot.raw'), p('hot.vhdx')]);
    const added = await host.json<DiskAttachment>(['vm', 'disk', 'add', 'g', '--path', p('hot.vhdx')]);
    hot = added.id;
    await eventually(async () => (/ 18432 VISOR-HOT-01/.test(await guestDisks()) ? true : undefined), 'the hot-added disk in the guest', 30_000);
    const ide = await host.cli(['vm', 'disk', 'add', 'g', '--size', '1M', '--controller', 'ide']);
    assert.equal(ide.code, 4, ide.stderr);
    assert.match(ide.stderr, /IDE/);

    assert.equal((await host.cli(['vm', 'disk', 'remove', 'g', hot])).code, 0);
    await eventually(async () => (/VISOR-HOT-01/.test(await guestDisks()) ? undefined : true), 'the removed disk to leave the guest', 30_000);
    assert.ok(await stat(p('hot.vhdx')), 'the file is kept');
    const listed = await host.json<DiskAttachment[]>(['vm', 'disk', 'list', 'g']);
    assert.ok(!listed.some((d) => d.id === hot));
  });

  await t.test('a host block device is passed through (hot-added on SCSI), and refused without --passthrough', { skip: process.getuid?.() === 0 ? false : 'needs root for losetup' }, async () => {
    await markedRaw('pass.raw', 'VISOR-PTH-01', 10 * MiB);
    const loop = (await run('losetup', ['-f', '--show', p('pass.raw')])).stdout.trim();
    t.after(() => run('losetup', ['-d', loop]).then(() => undefined, () => undefined));
    const plain = await host.cli(['vm', 'disk', 'add', 'g', '--path', loop]);
    assert.equal(plain.code, 2, plain.stderr);
    assert.match(plain.stderr, /--passthrough/);
    const added = await host.json<DiskAttachment>(['vm', 'disk', 'add', 'g', '--path', loop, '--passthrough']);
    assert.equal(added.format, 'raw');
    await eventually(async () => (/ 20480 VISOR-PTH-01/.test(await guestDisks()) ? true : undefined), 'the pass-through disk in the guest', 30_000);
    const twice = await host.cli(['vm', 'disk', 'add', 'g', '--path', loop, '--passthrough']);
    assert.equal(twice.code, 4, twice.stderr);
    assert.equal((await host.cli(['vm', 'disk', 'remove', 'g', added.id])).code, 0);
    await eventually(async () => (/VISOR-PTH-01/.test(await guestDisks()) ? undefined : true), 'the pass-through disk to leave the guest', 30_000);
  });

  await t.test('the DVD is inserted, ejected and inserted again while running', async () => {
    await markedRaw('a.iso', 'VISOR-ISO-AA', 2 * MiB);
    await markedRaw('b.iso', 'VISOR-ISO-BB', 2 * MiB);
    const readDvd = async (): Promise<string> => (await host.cli(['vm', 'exec', 'g', '--', 'sh', '-c', 'head -c 12 /dev/sr0 2>&1'])).stdout;
    assert.equal((await host.cli(['vm', 'dvd', 'set', 'g', p('a.iso')])).code, 0);
    await eventually(async () => ((await readDvd()).includes('VISOR-ISO-AA') ? true : undefined), 'the guest to read the ISO', 30_000);
    assert.equal((await host.cli(['vm', 'dvd', 'eject', 'g'])).code, 0);
    await eventually(async () => ((await readDvd()).includes('VISOR-ISO') ? undefined : true), 'the DVD to be empty', 30_000);
    assert.equal((await host.cli(['vm', 'dvd', 'set', 'g', p('b.iso')])).code, 0);
    await eventually(async () => ((await readDvd()).includes('VISOR-ISO-BB') ? true : undefined), 'the guest to read the second ISO', 30_000);
    const vm = await host.json<VmView>(['vm', 'show', 'g']);
    assert.equal(vm.config.dvd?.iso, p('b.iso'));
    assert.equal(vm.state, 'running');
  });
});
