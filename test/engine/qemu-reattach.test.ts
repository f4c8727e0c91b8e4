import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { VisorError } from '../../src/core/index.js';
import { ENGINE_ERROR_CODES, GuestAgent, QemuInstance, QmpClient, launchVm, reattachVm, runtimeFiles } from '../../src/engine/qemu/index.js';
import { TestVm } from './vm-fixture.js';

/** Reattach's refusals, exits we did not ask for, and launches that must leave nothing behind. */
describe('reattach and failure paths (real QEMU, no OS)', () => {
  const vms: TestVm[] = [];
  const instances: QemuInstance[] = [];

  async function newVm(disks: 'qcow2' | 'qcow2+vhdx' = 'qcow2+vhdx', generation: 1 | 2 = 1): Promise<TestVm> {
    const vm = await TestVm.create({
      generation,
      disks: [
        { id: 'boot', format: 'qcow2', controller: 'virtio', controllerNumber: 0, location: 0 },
        ...(disks === 'qcow2+vhdx' ? [{ id: 'data', format: 'vhdx' as const, controller: 'scsi' as const, controllerNumber: 0, location: 0 }] : []),
      ],
    });
    vms.push(vm);
    return vm;
  }

  async function start(vm: TestVm): Promise<QemuInstance> {
    const instance = await launchVm({ config: vm.config, paths: vm.paths, accelerator: 'tcg' });
    instances.push(instance);
    return instance;
  }

  after(async () => {
    for (const instance of instances) instance.dispose();
    const leaked = (await Promise.all(vms.map((vm) => vm.dispose()))).flat();
    assert.deepEqual(leaked, [], 'no QEMU or storage daemon may outlive the test');
  });

  it('returns null for a VM that never ran', async () => {
    const vm = await newVm();
    assert.equal(await reattachVm({ config: vm.config, paths: vm.paths }), null);
  });

  it('refuses a pidfile naming a process that is not this VM\'s QEMU', async () => {
    const a = await newVm('qcow2');
    const b = await newVm('qcow2');
    const qemuA = await start(a);
    const files = runtimeFiles(b.paths);
    await rm(b.paths.runDir, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(b.paths.runDir, { recursive: true }));
    // Our own pid: alive, but node.
    await writeFile(files.pidFile, `${process.pid}\n`);
    const notQemu = await reattachVm({ config: b.config, paths: b.paths });
    assert.ok(notQemu && 'exited' in notQemu && /another program/.test(notQemu.reason), JSON.stringify(notQemu));
    // Another VM's QEMU: alive, QEMU, wrong uuid.
    await writeFile(files.pidFile, `${qemuA.pid}\n`);
    const otherVm = await reattachVm({ config: b.config, paths: b.paths });
    assert.ok(otherVm && 'exited' in otherVm, JSON.stringify(otherVm));
    assert.equal(await qemuA.status(), 'running', 'the other VM is untouched');
    await qemuA.quit();
  });

  it('reports a QEMU killed behind our back and kills its leftover storage daemon', async () => {
    const vm = await newVm();
    const qemu = await start(vm);
    qemu.dispose();
    process.kill(qemu.pid, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const found = await reattachVm({ config: vm.config, paths: vm.paths });
    assert.ok(found && 'exited' in found, JSON.stringify(found));
    assert.match(found.reason, /is gone/);
    assert.deepEqual(await vm.processes(), [], 'storage daemon killed');
  });

  it('tells a SIGTERM from a quit, with QEMU\'s own words from qemu.log', async () => {
    const vm = await newVm();
    const qemu = await start(vm);
    const exit = qemu.waitForExit();
    process.kill(qemu.pid, 'SIGTERM');
    const why = await exit;
    assert.equal(why.kind, 'host-signal');
    assert.match(why.reason, /terminating on signal 15/);
    // The storage daemon went with QEMU, with no quit() from us.
    assert.deepEqual(await vm.processes(), []);
    await qemu.quit(); // harmless once everything is gone
  });

  it('throws vm-unresponsive (not "exited") while another client holds QMP', async () => {
    const vm = await newVm('qcow2');
    const qemu = await start(vm);
    const files = runtimeFiles(vm.paths);
    try {
      await assert.rejects(reattachVm({ config: vm.config, paths: vm.paths, timeoutMs: 300 }), (e: unknown) => e instanceof VisorError && e.code === ENGINE_ERROR_CODES.vmUnresponsive);
      qemu.dispose();
      const second = await QmpClient.connect(files.qmpSocket, { timeoutMs: 2000 });
      assert.equal((await second.queryStatus()).status, 'running');
      second.dispose();
    } finally {
      const found = await reattachVm({ config: vm.config, paths: vm.paths });
      assert.ok(found instanceof QemuInstance);
      await found.quit();
    }
  });

  it('refuses to start a VM twice', async () => {
    const vm = await newVm('qcow2');
    const qemu = await start(vm);
    await assert.rejects(start(vm), (e: unknown) => e instanceof VisorError && e.code === ENGINE_ERROR_CODES.alreadyRunning && e.kind === 'conflict');
    await qemu.quit();
  });

  it('a launch QEMU refuses says why and leaves no storage daemon behind', async () => {
    const vm = await newVm();
    await rm(vm.config.disks[0]?.path ?? '');
    await assert.rejects(start(vm), (e: unknown) => {
      assert.ok(e instanceof VisorError, String(e));
      assert.equal(e.code, ENGINE_ERROR_CODES.qemuStartFailed);
      assert.match(e.message, /QEMU did not start: .*boot\.qcow2.*No such file/);
      return true;
    });
    assert.deepEqual(await vm.processes(), []);
  });

  it('a cancelled launch starts nothing', async () => {
    const vm = await newVm();
    await assert.rejects(
      launchVm({ config: vm.config, paths: vm.paths, accelerator: 'tcg', signal: AbortSignal.abort() }),
      (e: unknown) => e instanceof VisorError && e.kind === 'cancelled',
    );
    assert.deepEqual(await vm.processes(), []);
  });

  it('the guest agent is unavailable on a VM with no OS, quickly', async () => {
    const vm = await newVm('qcow2');
    const qemu = await start(vm);
    try {
      await assert.rejects(GuestAgent.connect(join(vm.paths.runDir, 'qga.sock'), { timeoutMs: 300 }), (e: unknown) => e instanceof VisorError && e.code === ENGINE_ERROR_CODES.agentUnavailable);
    } finally {
      await qemu.quit();
    }
  });

  it('generation 2 with Secure Boot starts (SMM, secure pflash, enrolled keys)', async () => {
    const vm = await newVm('qcow2', 2);
    const config = { ...vm.config, secureBoot: true };
    const qemu = await launchVm({ config, paths: vm.paths, accelerator: 'tcg' });
    instances.push(qemu);
    try {
      assert.equal(await qemu.status(), 'running');
    } finally {
      await qemu.quit();
    }
  });
});
