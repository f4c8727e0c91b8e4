import assert from 'node:assert/strict';
import { copyFile, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { quietContext } from '../../src/core/index.js';
import { GuestAgent, launchVm } from '../../src/engine/qemu/index.js';
import type { QemuInstance } from '../../src/engine/qemu/index.js';
import { TestVm } from './vm-fixture.js';

/**
 * With a real guest, when the test image has been built (guests/out/tiny-x64.vhdx); skipped
 * otherwise. The image prints VISOR-GUEST-READY on its serial port and runs qemu-guest-agent.
 */
const IMAGE = join(process.cwd(), 'guests', 'out', 'tiny-x64.vhdx');
const READY = 'VISOR-GUEST-READY';
const haveImage = await stat(IMAGE).then(
  () => true,
  () => false,
);

async function waitForSerial(path: string, text: string, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    const log = await readFile(path, 'utf8').catch(() => '');
    if (log.includes(text)) return Math.round(performance.now() - started);
    await sleep(100);
  }
  throw new Error(`"${text}" did not appear on the serial port within ${timeoutMs} ms`);
}

describe('a real guest (tiny-x64)', { skip: haveImage ? false : 'guests/out/tiny-x64.vhdx is not built' }, () => {
  let vm: TestVm;
  let instance: QemuInstance | null = null;

  before(async () => {
    vm = await TestVm.create({ generation: 1, disks: [] });
    const disk = join(vm.dir, 'tiny.vhdx');
    await copyFile(IMAGE, disk);
    vm.config.disks.push({ id: 'boot', controller: 'ide', controllerNumber: 0, location: 0, path: disk, format: 'vhdx', readOnly: false });
    vm.config.memory.startup = 256 * 1024 * 1024;
  });

  after(async () => {
    instance?.dispose();
    assert.deepEqual(await vm.dispose(), [], 'no QEMU or storage daemon may outlive the test');
  });

  it('boots from a vhdx served by the storage daemon', async (t) => {
    instance = await launchVm({ config: vm.config, paths: vm.paths, accelerator: 'tcg' });
    const ms = await waitForSerial(join(vm.paths.runDir, 'serial.log'), READY, 90_000);
    t.diagnostic(`${READY} ${ms} ms after QMP was ready`);
  });

  it('runs a command through the guest agent', async () => {
    const agent = await GuestAgent.connect(join(vm.paths.runDir, 'qga.sock'), { timeoutMs: 10_000 });
    try {
      await agent.ping();
      const result = await agent.exec('/bin/sh', ['-c', 'read line; echo "got $line"; echo err >&2; exit 7'], { input: 'hello\n', timeoutMs: 20_000 });
      assert.deepEqual(result, { exitCode: 7, stdout: 'got hello\n', stderr: 'err\n' });
    } finally {
      agent.dispose();
    }
  });

  it('saves and restores a running guest; the agent answers after the restore', async (t) => {
    assert.ok(instance);
    const state = join(vm.dir, 'saved.state');
    const started = performance.now();
    await instance.saveState(state, quietContext());
    t.diagnostic(`saveState of a 256 MiB guest ${Math.round(performance.now() - started)} ms, ${(await stat(state)).size} bytes`);
    instance = await launchVm({ config: vm.config, paths: vm.paths, accelerator: 'tcg', incomingStateFile: state });
    t.diagnostic(`restore timings ${JSON.stringify(instance.timings)}`);
    await instance.resume();
    const agent = await GuestAgent.connect(join(vm.paths.runDir, 'qga.sock'), { timeoutMs: 10_000 });
    try {
      const result = await agent.exec('/bin/echo', ['back'], { timeoutMs: 10_000 });
      assert.equal(result.stdout, 'back\n');
    } finally {
      agent.dispose();
    }
  });

  it('powers off when the ACPI button is pressed, and says the guest did it', async () => {
    assert.ok(instance);
    const exit = instance.waitForExit(AbortSignal.timeout(30_000));
    await instance.powerDown();
    const why = await exit;
    assert.equal(why.kind, 'guest-shutdown', why.reason);
    assert.deepEqual(await vm.processes(), [], 'the storage daemon went with QEMU');
    instance = null;
  });
});
