import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { VmView } from '../../src/core/index.js';
import { VisorTestHost, eventually, isAlive } from '../support/visor-host.js';
import { pngSize } from '../support/png.js';

/**
 * The foundation, end to end through the CLI as a person uses it: three real guests (one of
 * them 32-bit, one on UEFI) booted from their VHDX images under TCG, run side by side, and
 * driven through their whole lifecycle, across a daemon crash. The guests are booted once and
 * shared by the steps below, which run in order.
 */
test('three VMs from boot to shutdown, across a daemon crash', { timeout: 600_000 }, async (t) => {
  const host = await VisorTestHost.create();
  t.after(() => host.dispose());
  await host.startDaemon();

  const vms = {
    bios64: { image: 'tiny-x64', generation: '1', arch: 'x86_64', resolution: '1280x1024' },
    uefi64: { image: 'tiny-x64', generation: '2', arch: 'x86_64', resolution: '1024x768' },
    bios32: { image: 'tiny-x86', generation: '1', arch: 'i686', resolution: '800x600' },
  } as const;
  type Name = keyof typeof vms;
  const names = Object.keys(vms) as Name[];
  const ids = {} as Record<Name, string>;

  const show = (name: string) => host.json<VmView>(['vm', 'show', name]);
  const exec = async (name: string, ...command: string[]) => {
    const result = await host.cli(['vm', 'exec', name, '--', ...command]);
    assert.equal(result.code, 0, `vm exec ${name} ${command.join(' ')}: ${result.stderr}`);
    return result.stdout.trim();
  };
  const counter = async (name: string) => Number(await exec(name, 'cat', '/run/counter'));
  const uptime = async (name: string) => Number((await exec(name, 'cat', '/proc/uptime')).split(' ')[0]);

  await t.test('host info picks TCG here and says why', async () => {
    const info = await host.json<{ accelerator: { kind: string; reason: string } }>(['host', 'info']);
    assert.equal(info.accelerator.kind, 'tcg');
    assert.match(info.accelerator.reason, /vmx|svm|PVM|kvm/i);
  });

  await t.test('the image library lists both tiny guests', async () => {
    const images = await host.json<{ name: string; architecture: string }[]>(['image', 'list']);
    const byName = Object.fromEntries(images.map((i) => [i.name, i.architecture]));
    assert.equal(byName['tiny-x64'], 'x86_64');
    assert.equal(byName['tiny-x86'], 'i686');
  });

  await t.test('three VMs are created from their images', async () => {
    for (const name of names) {
      const spec = vms[name];
      const view = await host.json<VmView>([
        'vm', 'create', name, '--image', spec.image, '--generation', spec.generation,
        '--memory', '256M', '--resolution', spec.resolution,
      ]);
      assert.equal(view.state, 'off');
      assert.equal(view.config.generation, Number(spec.generation));
      ids[name] = view.config.id;
    }
  });

  await t.test('all three start at once and boot through their firmware to the ready line', async () => {
    const results = await Promise.all(names.map((name) => host.cli(['vm', 'start', name])));
    results.forEach((r, i) => assert.equal(r.code, 0, `start ${names[i]}: ${r.stderr}`));
    const lines = await Promise.all(names.map((name) => host.waitForSerial(ids[name], /VISOR-GUEST-READY/, 180_000)));
    assert.equal(lines.length, 3);
    // Firmware first: SeaBIOS or OVMF printed before the kernel did.
    const bios = await readFile(join(host.vmRunDir(ids.bios64), 'serial.log'), 'utf8');
    assert.match(bios, /SeaBIOS|Booting from Hard Disk|SYSLINUX|EXTLINUX/i);
    const list = await host.json<VmView[]>(['vm', 'list']);
    assert.deepEqual(list.filter((v) => v.state === 'running').map((v) => v.config.name).sort(), [...names].sort());
  });

  await t.test('vm exec runs uname -m in each guest: x86_64 for the 64-bit ones, i686 for the 32-bit one', async () => {
    for (const name of names) assert.equal(await exec(name, 'uname', '-m'), vms[name].arch);
    const failing = await host.cli(['vm', 'exec', 'bios64', '--', 'sh', '-c', 'echo oops >&2; exit 7']);
    assert.equal(failing.code, 7, 'vm exec exits with the command\'s code');
    assert.match(failing.stderr, /oops/);
  });

  await t.test('a screenshot is a PNG of the guest screen at its configured resolution', async () => {
    const file = join(host.home, 'bios64.png');
    await eventually(async () => {
      const r = await host.cli(['vm', 'screenshot', 'bios64', file]);
      assert.equal(r.code, 0, r.stderr);
      const size = pngSize(await readFile(file));
      return size.width === 1280 && size.height === 1024 ? size : undefined;
    }, 'the guest to switch its screen to 1280x1024', 60_000);
  });

  await t.test('pause stops the guest and resume continues it', async () => {
    const a = await counter('bios64');
    await sleep(2000);
    const b = await counter('bios64');
    const perSecond = (b - a) / 2;
    assert.ok(perSecond > 0.5, `the counter runs (${perSecond}/s)`);
    assert.equal((await host.json<VmView>(['vm', 'pause', 'bios64'])).state, 'paused');
    await sleep(3000);
    assert.equal((await show('bios64')).state, 'paused');
    assert.equal((await host.json<VmView>(['vm', 'resume', 'bios64'])).state, 'running');
    const c = await counter('bios64');
    assert.ok(c - b < perSecond * 2, `while paused 3 s the counter moved only ${c - b} (it runs ${perSecond}/s)`);
    await sleep(1000);
    assert.ok((await counter('bios64')) > c, 'after resume the counter moves again');
  });

  await t.test('save ends the process; start resumes exactly there', async () => {
    const before = await counter('bios32');
    const upBefore = await uptime('bios32');
    const pid = (await show('bios32')).pid!;
    const saved = await host.json<VmView>(['vm', 'save', 'bios32']);
    assert.equal(saved.state, 'saved');
    await eventually(async () => (isAlive(pid) ? undefined : true), 'the saved VM\'s QEMU to exit', 10_000);
    await sleep(2000);
    assert.equal((await show('bios32')).state, 'saved');
    const started = await host.json<VmView>(['vm', 'start', 'bios32']);
    assert.equal(started.state, 'running');
    const after = await counter('bios32');
    const upAfter = await uptime('bios32');
    assert.ok(after >= before, `the counter continues (${before} → ${after}), it did not restart from 0`);
    assert.ok(upAfter >= upBefore && upAfter < upBefore + 10, `guest uptime continues (${upBefore} → ${upAfter}): no reboot`);
    await sleep(1000);
    assert.ok((await counter('bios32')) > after, 'and keeps counting');
  });

  await t.test('kill -9 of the daemon leaves the VMs running; a new daemon takes all three back', async () => {
    const before = await host.json<VmView[]>(['vm', 'list']);
    const pids = Object.fromEntries(before.map((v) => [v.config.name, v.pid]));
    await host.killDaemon();
    for (const name of names) assert.ok(isAlive(pids[name]!), `${name}'s QEMU survives the daemon`);
    await host.startDaemon();
    const after = await host.json<VmView[]>(['vm', 'list']);
    for (const name of names) {
      const vm = after.find((v) => v.config.name === name)!;
      assert.equal(vm.state, 'running', `${name} is running after reattach`);
      assert.equal(vm.pid, pids[name], `${name} is the same process`);
    }
    // ... and controls them.
    assert.equal((await host.json<VmView>(['vm', 'pause', 'uefi64'])).state, 'paused');
    assert.equal((await host.json<VmView>(['vm', 'resume', 'uefi64'])).state, 'running');
    assert.equal(await exec('bios32', 'uname', '-m'), 'i686');
  });

  await t.test('a VM whose QEMU died while the daemon was down shows as off, with the reason', async () => {
    const { pid } = await show('bios64');
    await host.killDaemon();
    process.kill(pid!, 'SIGKILL');
    await eventually(async () => (isAlive(pid!) ? undefined : true), 'QEMU to die');
    await host.startDaemon();
    const vm = await show('bios64');
    assert.equal(vm.state, 'off');
    assert.match(vm.stateReason ?? '', /while the daemon was not running/);
  });

  await t.test('the host\'s shutdown step: each VM\'s automatic stop action (ACPI shut-down of the UEFI guest, save)', async () => {
    const pids = { uefi64: (await show('uefi64')).pid!, bios32: (await show('bios32')).pid! };
    await host.json(['vm', 'set', 'uefi64', '--auto-stop', 'shut-down', '--auto-start', 'start-if-running']);
    await host.json(['vm', 'set', 'bios32', '--auto-stop', 'save']);
    const result = await host.cli(['host', 'stop-vms', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const outcome = JSON.parse(result.stdout) as Array<{ name: string; action: string; state: string; error: string | null }>;
    assert.deepEqual(outcome, [
      { name: 'bios32', action: 'save', state: 'saved', error: null },
      { name: 'uefi64', action: 'shut-down', state: 'off', error: null },
    ]);
    assert.equal((await show('uefi64')).state, 'off');
    assert.equal((await show('bios32')).state, 'saved');
    for (const [name, pid] of Object.entries(pids)) await eventually(async () => (isAlive(pid) ? undefined : true), `${name}'s QEMU to be gone`, 10_000);
    // Stopped by the host, so start-if-running starts it after the next boot: its marker stays.
    const uefi = await show('uefi64');
    await access(join(uefi.folder, 'state', 'running'));
  });

  await t.test('delete', async () => {
    const refused = await host.cli(['vm', 'delete', 'missing-vm']);
    assert.equal(refused.code, 3, 'not found exits 3');
    for (const name of names) assert.equal((await host.cli(['vm', 'delete', name])).code, 0);
    assert.deepEqual(await host.json<VmView[]>(['vm', 'list']), []);
  });
});
