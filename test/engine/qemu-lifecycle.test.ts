import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { quietContext } from '../../src/core/index.js';
import { QemuInstance, launchVm, reattachVm } from '../../src/engine/qemu/index.js';
import { TestVm, pngSize } from './vm-fixture.js';

/**
 * Real QEMU, no guest OS: each generation launches with a blank qcow2 (QEMU) and a blank vhdx
 * (served by the storage daemon), then walks the whole lifecycle in order.
 */
for (const generation of [1, 2] as const) {
  describe(`generation ${generation} VM under TCG`, () => {
    let vm: TestVm;
    let instance: QemuInstance | null = null;
    const stateFile = (): string => join(vm.dir, 'saved.state');

    before(async () => {
      vm = await TestVm.create({
        generation,
        disks: [
          { id: 'boot', format: 'qcow2', controller: generation === 1 ? 'ide' : 'scsi', controllerNumber: 0, location: 0 },
          { id: 'data', format: 'vhdx', controller: generation === 1 ? 'virtio' : 'ide', controllerNumber: 0, location: generation === 1 ? 0 : 1 },
        ],
        dvd: { controller: 'ide', controllerNumber: 1, location: 0, iso: null },
      });
    });

    after(async () => {
      instance?.dispose();
      const leaked = await vm.dispose();
      assert.deepEqual(leaked, [], 'no QEMU or storage daemon may outlive the test');
    });

    it('launches with the storage daemon and runs', async (t) => {
      const started = performance.now();
      instance = await launchVm({ config: vm.config, paths: vm.paths, accelerator: 'tcg' });
      t.diagnostic(`launchVm ${Math.round(performance.now() - started)} ms; timings ${JSON.stringify(instance.timings)}`);
      assert.equal(await instance.status(), 'running');
      assert.ok(instance.storage, 'the vhdx disk brings a storage daemon');
      const procs = await vm.processes();
      assert.equal(procs.length, 2, JSON.stringify(procs));
      assert.equal((await stat(vm.paths.runDir)).mode & 0o777, 0o700);
      if (generation === 2) assert.equal((await stat(join(vm.paths.vmDir, 'firmware', 'OVMF_VARS.fd'))).size, 540672);
    });

    it('pauses and resumes', async () => {
      assert.ok(instance);
      await instance.pause();
      assert.equal(await instance.status(), 'paused');
      await instance.resume();
      assert.equal(await instance.status(), 'running');
    });

    it('takes a screenshot as PNG', async (t) => {
      assert.ok(instance);
      const size = pngSize(await instance.screendump());
      // No OS sets the configured 1024x768 mode: firmware shows its own (640x480 / 720x400).
      t.diagnostic(`screendump ${size.width}x${size.height} (configured 1024x768; no OS to switch modes)`);
      assert.ok(size.width >= 640 && size.height >= 400);
    });

    it('saves its state to a file and stops QEMU and the storage daemon', async (t) => {
      assert.ok(instance);
      const fractions: number[] = [];
      const started = performance.now();
      await instance.saveState(stateFile(), { ...quietContext(), progress: (f) => fractions.push(f) });
      t.diagnostic(`saveState ${Math.round(performance.now() - started)} ms, ${(await stat(stateFile())).size} bytes`);
      assert.equal(fractions.at(-1), 1);
      assert.deepEqual(await vm.processes(), []);
      instance = null;
    });

    it('restores from the saved state, paused, and runs on resume', async (t) => {
      instance = await launchVm({ config: vm.config, paths: vm.paths, accelerator: 'tcg', incomingStateFile: stateFile() });
      t.diagnostic(`restore timings ${JSON.stringify(instance.timings)}`);
      assert.equal(await instance.status(), 'paused');
      await instance.resume();
      assert.equal(await instance.status(), 'running');
    });

    it('is found again after we drop our connections', async () => {
      assert.ok(instance);
      const pid = instance.pid;
      const storagePid = instance.storage?.pid;
      instance.dispose();
      instance = null;
      const found = await reattachVm({ config: vm.config, paths: vm.paths });
      assert.ok(found instanceof QemuInstance, `reattached: ${JSON.stringify(found)}`);
      instance = found;
      assert.equal(found.pid, pid);
      assert.equal(found.storage?.pid, storagePid);
      assert.equal(await found.status(), 'running');
    });

    it('turns off with quit, and reports why', async () => {
      assert.ok(instance);
      const exit = instance.waitForExit();
      await instance.quit();
      assert.equal((await exit).kind, 'host-quit');
      assert.deepEqual(await vm.processes(), []);
      instance = null;
      const again = await reattachVm({ config: vm.config, paths: vm.paths });
      assert.ok(again === null || 'exited' in again, JSON.stringify(again));
    });
  });
}
