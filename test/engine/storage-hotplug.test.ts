import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { DiskAttachment } from '../../src/core/index.js';
import { diskServing, launchVm, reattachVm, recoverStorageMove } from '../../src/engine/qemu/index.js';
import type { MoveRecord, QemuInstance } from '../../src/engine/qemu/index.js';
import { TestVm } from './vm-fixture.js';

/**
 * Hot-plug and moves on a generation-2 (q35) VM with no OS: PCI devices go into the PCIe
 * hot-plug ports, a VHDX disk starts the storage daemon on demand (and reattach finds it),
 * failures leave nothing behind, and a cancelled move leaves the VM on its source.
 */
const run = promisify(execFile);
const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);
const code = (error: unknown): string | undefined => (error as { code?: string }).code;

describe('hot-plug and storage moves on a generation 2 VM', () => {
  let vm: TestVm;
  let instance: QemuInstance;

  const disk = async (id: string, format: 'qcow2' | 'vhdx' | 'raw', rest: Partial<DiskAttachment>, size = '16M'): Promise<DiskAttachment> => {
    const path = join(vm.dir, `${id}.${format}`);
    await run('qemu-img', ['create', '-q', '-f', format, path, size]);
    return { id, controller: 'scsi', controllerNumber: 0, location: 0, path, format, readOnly: false, ...rest };
  };
  const disk2 = async (id: string, rest: Partial<DiskAttachment>): Promise<DiskAttachment> => {
    const made = await disk(id, 'raw', rest);
    await run('sh', ['-c', `head -c 16M /dev/urandom | dd of=${made.path} conv=notrunc status=none`]);
    return made;
  };
  /** The PCIe port a device sits in (its parent bus is /machine/peripheral/<port>/<port>). */
  const portOf = async (id: string): Promise<string | null> => {
    const bus = await instance.qmp.execute<string>('qom-get', { path: `/machine/peripheral/${id}`, property: 'parent_bus' });
    return /^\/machine\/peripheral\/(hotplug\d+)\//.exec(bus)?.[1] ?? null;
  };

  before(async () => {
    vm = await TestVm.create({ generation: 2, disks: [{ id: 'boot', controller: 'scsi', controllerNumber: 0, location: 0, format: 'qcow2', size: '16M' }] });
    instance = await launchVm({ config: vm.config, paths: vm.paths, accelerator: 'tcg' });
  });

  after(async () => {
    await instance.quit().catch(() => undefined);
    assert.deepEqual(await vm.dispose(), [], 'no QEMU or storage daemon may outlive the test');
  });

  it('starts the storage daemon on demand for a hot-added VHDX disk; reattach finds it; removal drops its export', async () => {
    assert.equal(instance.storage?.pid, undefined, 'a VM with no VHDX disk starts without a storage daemon');
    const vhdx = await disk('v', 'vhdx', { location: 2 });
    await instance.addDisk(vhdx, { generation: 2 });
    assert.ok(instance.storage, 'started on demand');
    assert.deepEqual((await instance.storage.qmp.queryBlockExports()).map((e) => e.id), ['export-disk-v']);
    const serving = await diskServing(instance.qmp, instance.storage.qmp, 'v');
    assert.equal(serving.where, 'storage-daemon');
    assert.equal(serving.filename, vhdx.path);

    instance.dispose();
    const again = await reattachVm({ config: vm.config, paths: vm.paths });
    assert.ok(again && !('exited' in again));
    instance = again;
    assert.ok(instance.storage, 'reattach finds the on-demand storage daemon');

    await instance.removeDisk('v');
    assert.deepEqual(await instance.storage.qmp.queryBlockExports(), []);
    assert.deepEqual((await instance.storage.qmp.queryNamedBlockNodes()).map((n) => n['node-name']), []);
  });

  it('puts a new SCSI controller and a virtio disk into free PCIe hot-plug ports', async () => {
    await instance.addDisk(await disk('s2', 'qcow2', { controllerNumber: 2, location: 7 }), { generation: 2 });
    await instance.addDisk(await disk('vb', 'qcow2', { controller: 'virtio' }), { generation: 2 });
    assert.equal(await portOf('scsi2'), 'hotplug0');
    assert.equal(await portOf('disk-vb'), 'hotplug1');
    await instance.removeDisk('s2');
    assert.equal((await instance.qmp.queryBlock()).some((b) => b.qdev === 'disk-s2'), false);
  });

  it('refuses IDE and a disk attached twice; a failed add leaves no node behind', async () => {
    const before = (await instance.qmp.queryNamedBlockNodes()).map((n) => n['node-name']).sort();
    await assert.rejects(instance.addDisk(await disk('i', 'qcow2', { controller: 'ide' }), { generation: 2 }), (e) => code(e) === 'disk-hotplug-unsupported');
    const twice = { ...(await disk('vb-again', 'qcow2', { location: 9 })), id: 'vb' };
    await assert.rejects(instance.addDisk(twice, { generation: 2 }), (e) => code(e) === 'disk-already-attached');
    const missing: DiskAttachment = { id: 'gone', controller: 'scsi', controllerNumber: 0, location: 4, path: join(vm.dir, 'nope.qcow2'), format: 'qcow2', readOnly: false };
    await assert.rejects(instance.addDisk(missing, { generation: 2 }), (e) => code(e) === 'qmp-command-failed');
    // A device_add refused after the nodes were added: LUN 0 of scsi0 is taken by the boot disk.
    await assert.rejects(instance.addDisk(await disk('clash', 'qcow2', { location: 0 }), { generation: 2 }), (e) => code(e) === 'qmp-command-failed');
    const after = (await instance.qmp.queryNamedBlockNodes()).map((n) => n['node-name']).sort();
    assert.deepEqual(after, before);
  });

  it('a cancelled move leaves the VM on its source and removes the partial target', async (t) => {
    const big = await disk('big', 'raw', { location: 11 }, '512M');
    await run('sh', ['-c', `head -c 128M /dev/urandom | dd of=${big.path} conv=notrunc status=none`]);
    await instance.addDisk(big, { generation: 2 });
    const target = join(vm.dir, 'big-moved.qcow2');
    const controller = new AbortController();
    const records: MoveRecord[] = [];
    const move = instance.moveStorage(
      [{ disk: big, path: target, format: 'qcow2' }],
      { signal: controller.signal, progress: () => controller.abort() },
      { onRecord: (r) => void records.push(r) },
    );
    const started = performance.now();
    await assert.rejects(move, (e) => code(e) === 'cancelled');
    t.diagnostic(`move cancelled and undone ${Math.round(performance.now() - started)} ms after it began`);
    assert.equal(await exists(target), false, 'the partial target is gone');
    assert.deepEqual(records.map((r) => r.disks[0]?.phase), ['copying']);
    const serving = await diskServing(instance.qmp, null, 'big');
    assert.equal(serving.filename, big.path);
    assert.equal(serving.nodeName, 'disk-big');
    assert.deepEqual(await instance.qmp.queryBlockJobs(), []);
    assert.ok(!(await instance.qmp.queryNamedBlockNodes()).some((n) => n['node-name'].startsWith('mv-')), 'no target node left');
  });

  it('a move whose target cannot be created changes nothing; a later move works and can move again', async () => {
    const big = vm.config.disks[0]!;
    await assert.rejects(instance.moveStorage([{ disk: big, path: join(vm.dir, 'no', 'such', 'dir.qcow2'), format: 'qcow2' }]), (e) => code(e) === 'storage-move-failed');
    const first = await instance.moveStorage([{ disk: big, path: join(vm.dir, 'boot-2.vhdx'), format: 'vhdx' }]);
    assert.equal(first.disks[0]?.blocksSaveState, true, 'a VHDX node inside QEMU blocks save-state until restart');
    const moved = { ...big, path: join(vm.dir, 'boot-2.vhdx'), format: 'vhdx' as const };
    const second = await instance.moveStorage([{ disk: moved, path: join(vm.dir, 'boot-3.qcow2'), format: 'qcow2' }]);
    assert.equal((await diskServing(instance.qmp, null, 'boot')).filename, join(vm.dir, 'boot-3.qcow2'));
    assert.notEqual(first.disks[0]?.nodeName, second.disks[0]?.nodeName);
  });

  it('a mirror that does not converge in time switches to write-blocking and still pivots', async () => {
    const disk = await disk2('slow', { location: 13 });
    await instance.addDisk(disk, { generation: 2 });
    // 4 MiB/s over a 16 MiB disk: not ready within convergeAfterMs = 0, so the move switches.
    const result = await instance.moveStorage([{ disk, path: join(vm.dir, 'slow-moved.qcow2'), format: 'qcow2' }], undefined, {
      speed: 4 * 1024 * 1024,
      convergeAfterMs: 0,
    });
    assert.equal((await diskServing(instance.qmp, null, 'slow')).filename, join(vm.dir, 'slow-moved.qcow2'));
    assert.deepEqual(result.oldPaths, [disk.path]);
  });

  it('a move cut short by the daemon going away is rolled back from its record after reattach', async () => {
    const disk = vm.config.disks[0]!;
    const current = await diskServing(instance.qmp, null, disk.id);
    const source = { ...disk, path: current.filename, format: 'qcow2' as const };
    const records: MoveRecord[] = [];
    const target = join(vm.dir, 'boot-crash.qcow2');
    // "visord dies": our QMP connection closes once the mirror runs in QEMU.
    let gone = false;
    const ctx = {
      signal: new AbortController().signal,
      progress: (): void => {
        if (!gone) instance.dispose();
        gone = true;
      },
    };
    const move = instance.moveStorage([{ disk: source, path: target, format: 'qcow2' }], ctx, { onRecord: (r) => void records.push(r) });
    await assert.rejects(move);
    const record = records.at(-1);
    assert.ok(record && record.disks[0]?.phase === 'copying');
    const again = await reattachVm({ config: vm.config, paths: vm.paths });
    assert.ok(again && !('exited' in again));
    instance = again;
    const decision = await recoverStorageMove(instance, record);
    assert.equal(decision.disks[0]?.keep, 'old');
    assert.equal(await exists(target), false);
    assert.deepEqual(await instance.qmp.queryBlockJobs(), []);
    assert.equal((await diskServing(instance.qmp, null, disk.id)).filename, source.path);
    assert.ok(!(await instance.qmp.queryNamedBlockNodes()).some((n) => n['node-name'] === record.disks[0]?.targetNode));
  });
});
