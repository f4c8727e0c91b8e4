import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { GuestAgent, launchVm } from '../../src/engine/qemu/index.js';
import type { QemuInstance } from '../../src/engine/qemu/index.js';
import { PASSTHROUGH_ERROR_CODES, validatePassthroughDevice } from '../../src/storage/passthrough.js';
import { TestVm } from './vm-fixture.js';

/**
 * Pass-through of a host block device (a loop device; needs root): refused while mounted,
 * accepted once unmounted, then given to the real guest as a SCSI disk (host_device) whose
 * known pattern the guest reads back.
 */
const run = promisify(execFile);
const IMAGE = join(process.cwd(), 'guests', 'out', 'tiny-x64.vhdx');
const haveImage = await stat(IMAGE).then(
  () => true,
  () => false,
);
const isRoot = process.getuid?.() === 0;
const PATTERN_OFFSET = 1024 * 1024;

const code = (error: unknown): string | undefined => (error as { code?: string }).code;

describe('pass-through of a host block device', { skip: isRoot ? false : 'needs root for losetup and mount' }, () => {
  let vm: TestVm;
  let loop = '';
  let instance: QemuInstance | null = null;

  before(async () => {
    vm = await TestVm.create({ generation: 1, disks: [] });
    const backing = join(vm.dir, 'device.img');
    await run('truncate', ['-s', '16M', backing]);
    loop = (await run('losetup', ['-f', '--show', backing])).stdout.trim();
  });

  after(async () => {
    if (instance) await instance.quit().catch(() => undefined);
    await run('umount', [join(vm.dir, 'mnt')]).catch(() => undefined);
    if (loop) await run('losetup', ['-d', loop]).catch(() => undefined);
    assert.deepEqual(await vm.dispose(), [], 'no QEMU may outlive the test');
  });

  it('refuses a missing device, a regular file and a device another VM has', async () => {
    await assert.rejects(validatePassthroughDevice('/dev/visor-no-such-disk'), (e) => code(e) === PASSTHROUGH_ERROR_CODES.notFound);
    await assert.rejects(validatePassthroughDevice(join(vm.dir, 'device.img')), (e) => code(e) === PASSTHROUGH_ERROR_CODES.notBlockDevice);
    await assert.rejects(validatePassthroughDevice(loop, { inUse: [loop] }), (e) => code(e) === PASSTHROUGH_ERROR_CODES.inUse);
  });

  it('refuses the device while it is mounted, accepts it once unmounted', async () => {
    const mnt = join(vm.dir, 'mnt');
    await mkdir(mnt);
    await run('mkfs.ext4', ['-q', loop]);
    await run('mount', [loop, mnt]);
    await assert.rejects(validatePassthroughDevice(loop, { field: 'disks[1].path' }), (e: Error & { code?: string; field?: string }) => {
      assert.equal(e.code, PASSTHROUGH_ERROR_CODES.mounted);
      assert.equal(e.field, 'disks[1].path');
      assert.ok(e.message.includes(mnt), e.message);
      return true;
    });
    await run('umount', [mnt]);
    const device = await validatePassthroughDevice(loop);
    assert.equal(device.sizeBytes, 16 * 1024 * 1024);
    assert.equal(device.realPath, loop);
  });

  it('the guest reads the pattern the host wrote on the device', { skip: haveImage ? false : 'guests/out/tiny-x64.vhdx is not built' }, async () => {
    const pattern = Buffer.alloc(4096);
    for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + 3) & 0xff;
    const handle = await open(loop, 'r+');
    try {
      await handle.write(pattern, 0, pattern.length, PATTERN_OFFSET);
      await handle.sync();
    } finally {
      await handle.close();
    }
    const boot = join(vm.dir, 'tiny.vhdx');
    await copyFile(IMAGE, boot);
    vm.config.disks.push(
      { id: 'boot', controller: 'ide', controllerNumber: 0, location: 0, path: boot, format: 'vhdx', readOnly: false },
      { id: 'pt', controller: 'scsi', controllerNumber: 0, location: 0, path: loop, format: 'raw', readOnly: false },
    );
    vm.config.memory.startup = 256 * 1024 * 1024;
    instance = await launchVm({ config: vm.config, paths: vm.paths, accelerator: 'tcg' });
    const node = (await instance.qmp.queryNamedBlockNodes()).find((n) => n['node-name'] === 'disk-pt-file');
    assert.equal(node?.drv, 'host_device');
    const serial = join(vm.paths.runDir, 'serial.log');
    const started = performance.now();
    while (!(await readFile(serial, 'utf8').catch(() => '')).includes('VISOR-GUEST-READY')) {
      if (performance.now() - started > 90_000) assert.fail('the guest did not boot');
      await sleep(200);
    }
    const agent = await GuestAgent.connect(join(vm.paths.runDir, 'qga.sock'), { timeoutMs: 10_000 });
    try {
      // The SCSI disk is the one whose size is 16 MiB (32768 sectors).
      const script = `for d in /sys/block/sd*; do [ "$(cat $d/size)" = 32768 ] && dd if=/dev/\${d##*/} bs=4096 skip=${PATTERN_OFFSET / 4096} count=1 2>/dev/null | md5sum | cut -d' ' -f1; done; true`;
      const result = await agent.exec('/bin/sh', ['-c', script], { timeoutMs: 20_000 });
      const { createHash } = await import('node:crypto');
      assert.equal(result.stdout.trim(), createHash('md5').update(pattern).digest('hex'));
    } finally {
      agent.dispose();
    }
  });
});
