import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, copyFile, mkdir, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VisorClient } from '../../src/api/index.js';
import type { VmView } from '../../src/core/index.js';
import { SshServer } from '../support/remote-storage/ssh-server.js';
import { IMAGES_DIR, VisorTestHost } from '../support/visor-host.js';

/**
 * The seed's workflow through the CLI, and whole-folder storage moves: a VM is created as a
 * differencing child of a template on a file share (sshfs), runs, and its whole storage —
 * disk (flattened by the mirror), configuration, firmware variables — moves to a local folder
 * while the guest writes; the share can then go. A saved VM's folder moves with its state and
 * resumes from it; a daemon killed mid-move leaves one consistent place.
 */
const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const have = async (bin: string): Promise<boolean> => run('sh', ['-c', `command -v ${bin}`]).then(() => true, () => false);
const haveShare = isRoot && (await have('sshfs')) && (await have('/usr/sbin/sshd'));

const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);
const backingOf = async (path: string): Promise<string | undefined> =>
  (JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', path])).stdout) as { 'backing-filename'?: string })['backing-filename'];
/** Files QEMU (pid) holds open, by path. */
const openFiles = async (pid: number): Promise<string[]> => {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  return (await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')))).filter((p) => p.startsWith('/'));
};

/** Writes 200 numbered lines to /data in the guest while a move runs, fsyncing each. */
const WRITER = 'i=0; while [ $i -lt 200 ]; do echo "line $i" >> /data/during; sync; i=$((i+1)); done; echo wrote $i';

test('seed workflow: a differencing child of a template on a share, moved whole to a local folder while it runs', { timeout: 420_000, skip: haveShare ? false : 'needs root, sshfs and openssh-server' }, async (t) => {
  const host = await VisorTestHost.create();
  const ssh = await SshServer.start();
  // The share goes first (unmounted), so removing the test's folders never walks into it.
  t.after(async () => {
    await ssh.dispose();
    await host.dispose();
  });
  const base = join(host.home, '..');
  const share = join(ssh.dir, 'share');
  await mkdir(share);
  const mnt = join(ssh.dir, 'mnt');
  await ssh.mountSshfs(share, mnt);
  const template = join(mnt, 'template.vhdx');
  await copyFile(join(IMAGES_DIR, 'tiny-x64.vhdx'), template);
  await host.startDaemon();

  // Two VMs from the one template: generation 1 (IDE) and generation 2 (UEFI; its variables move too).
  const web = await host.json<VmView>(['vm', 'create', 'web', '--image', template, '--differencing', '--memory', '192M']);
  const uefi = await host.json<VmView>(['vm', 'create', 'uefi', '--image', template, '--differencing', '--generation', '2', '--memory', '256M']);
  const child = web.config.disks[0]!;
  assert.equal(child.format, 'qcow2');
  assert.deepEqual(child.backing, { path: template, format: 'vhdx' });
  assert.equal(await backingOf(child.path), template, 'the child reads the template on the share');
  assert.ok((await stat(child.path)).size < 1024 * 1024, 'nothing of the template was copied');

  for (const name of ['web', 'uefi']) assert.equal((await host.cli(['vm', 'start', name])).code, 0);
  await Promise.all([web, uefi].map((vm) => host.waitForSerial(vm.config.id, /VISOR-GUEST-READY/, 180_000)));
  const exec = (name: string, script: string, timeout = 120) => host.cli(['vm', 'exec', name, '--timeout', String(timeout), '--', 'sh', '-c', script], { timeoutMs: (timeout + 10) * 1000 });
  assert.match((await exec('web', 'echo before > /data/before; sync; echo ok')).stdout, /ok/);

  await t.test('bad destinations are refused before a job', async () => {
    const jobs = (await host.json<unknown[]>(['job', 'list'])).length;
    const full = join(base, 'full');
    await mkdir(full);
    await writeFile(join(full, 'someone-elses.txt'), 'x');
    const notEmpty = await host.cli(['vm', 'move-storage', 'web', '--to', full]);
    assert.equal(notEmpty.code, 4, notEmpty.stderr);
    assert.match(notEmpty.stderr, /not empty/);
    const registry = await host.cli(['vm', 'move-storage', 'web', '--to', join(host.home, 'vms', 'x')]);
    assert.equal(registry.code, 2, registry.stderr);
    assert.match(registry.stderr, /inside Visor's own VM registry/);
    assert.equal((await host.json<unknown[]>(['job', 'list'])).length, jobs, 'no job was made');
  });

  const local = join(base, 'local');
  await t.test('a VM created on the share lives there; moved while off, its child is flattened into the local folder', async () => {
    const onShare = join(mnt, 'vms', 'kept');
    const kept = await host.json<VmView>(['vm', 'create', 'kept', '--image', template, '--differencing', '--location', onShare]);
    assert.equal(kept.folder, onShare);
    assert.equal(kept.config.disks[0]!.path, join(onShare, 'disks', 'kept.qcow2'));
    assert.ok(await exists(join(onShare, 'vm.json')));
    assert.equal((await readFile(join(host.home, 'vms', kept.config.id, 'location'), 'utf8')).trim(), onShare);
    const moved = await host.cli(['vm', 'move-storage', 'kept', '--to', join(local, 'kept')]);
    assert.equal(moved.code, 0, moved.stderr);
    const shown = await host.json<VmView>(['vm', 'show', 'kept']);
    assert.equal(shown.folder, join(local, 'kept'));
    assert.equal(shown.config.disks[0]!.backing, undefined);
    assert.equal(await backingOf(shown.config.disks[0]!.path), undefined, 'flattened by the offline move');
    assert.ok(!(await exists(onShare)), 'nothing is left on the share');
  });

  await t.test('running VMs move whole while the guest writes; the share can go', async () => {
    const writing = exec('web', WRITER, 240);
    await new Promise((r) => setTimeout(r, 1000));
    const [movedWeb, movedUefi] = await Promise.all([
      host.cli(['vm', 'move-storage', 'web', '--to', join(local, 'web')]),
      host.cli(['vm', 'move-storage', 'uefi', '--to', join(local, 'uefi')]),
    ]);
    assert.equal(movedWeb.code, 0, movedWeb.stderr);
    assert.equal(movedUefi.code, 0, movedUefi.stderr);
    const wrote = await writing;
    assert.match(wrote.stdout, /wrote 200/, wrote.stderr);

    for (const vm of [web, uefi]) {
      const id = vm.config.id;
      const folder = join(local, vm.config.name);
      const shown = await host.json<VmView>(['vm', 'show', vm.config.name]);
      assert.equal(shown.state, 'running');
      assert.equal(shown.folder, folder);
      const disk = shown.config.disks[0]!;
      assert.equal(disk.path, join(folder, 'disks', `${vm.config.name}.qcow2`));
      assert.equal(disk.backing, undefined, 'the moved disk is standalone');
      assert.equal(await backingOf(disk.path), undefined);
      assert.equal((await readFile(join(host.home, 'vms', id, 'location'), 'utf8')).trim(), folder, 'the registry points at the new folder');
      assert.deepEqual(await readdir(join(host.home, 'vms', id)), ['location'], 'nothing else is left in the registry entry');
      assert.equal((JSON.parse(await readFile(join(folder, 'vm.json'), 'utf8')) as { id: string }).id, id);
      assert.ok(!(await exists(vm.config.disks[0]!.path)), 'the old child file is deleted');
    }
    // Generation 2: QEMU's UEFI variable store now is the file in the new folder.
    const uefiPid = (await host.json<VmView>(['vm', 'show', 'uefi'])).pid!;
    const held = await openFiles(uefiPid);
    assert.ok(held.includes(join(local, 'uefi', 'firmware', 'OVMF_VARS.fd')), `QEMU writes the moved variables: ${held.join(' ')}`);
    assert.ok(!held.some((p) => p.startsWith(join(host.home, 'vms'))), `nothing under the registry is open: ${held.join(' ')}`);

    // The share goes (umount fails with EBUSY if QEMU still had the template open).
    await ssh.unmount(mnt);
    await ssh.stop();
    const check = await exec('web', 'sync; echo 3 > /proc/sys/vm/drop_caches; cat /data/before; wc -l < /data/during; tail -n1 /data/during');
    assert.match(check.stdout, /before\n200\nline 199/, check.stdout + check.stderr);
  });

  await t.test('a saved VM moves whole with its saved state and resumes from it', async () => {
    const counter = Number((await exec('web', 'cat /run/counter')).stdout.trim());
    assert.equal((await host.cli(['vm', 'save', 'web'])).code, 0);
    const again = join(local, 'web-again');
    const moved = await host.cli(['vm', 'move-storage', 'web', '--to', again]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.ok(await exists(join(again, 'state', 'saved.vmstate')), 'the saved state moved');
    assert.ok(!(await exists(join(local, 'web'))), 'the old folder is gone');
    const shown = await host.json<VmView>(['vm', 'show', 'web']);
    assert.equal(shown.state, 'saved');
    assert.equal((await host.cli(['vm', 'start', 'web'])).code, 0);
    const after = Number((await exec('web', 'cat /run/counter')).stdout.trim());
    assert.ok(after >= counter, `the guest resumed, not rebooted: counter ${counter} → ${after}`);
    assert.match((await exec('web', 'cat /data/before')).stdout, /before/);
  });

  await t.test('a daemon killed mid-move leaves one consistent place; the VM runs and can move again', async () => {
    const target = join(local, 'uefi-killed');
    const client = new VisorClient({ socketPath: join(host.run, 'visord.sock'), preferWaitSeconds: 0 });
    const recordFile = join(host.home, 'vms', uefi.config.id, 'storage-move.json');
    await client.moveVmStorage('uefi', { destination: target });
    for (let i = 0; i < 2000 && !(await exists(recordFile)); i++) await new Promise((r) => setTimeout(r, 2));
    await host.killDaemon();
    await host.startDaemon();
    const shown = await host.json<VmView>(['vm', 'show', 'uefi']);
    assert.equal(shown.state, 'running');
    assert.ok(!(await exists(recordFile)), 'the move record is settled');
    const folder = (await readFile(join(host.home, 'vms', uefi.config.id, 'location'), 'utf8')).trim();
    const other = folder === target ? join(local, 'uefi') : target;
    assert.ok([target, join(local, 'uefi')].includes(folder), folder);
    assert.equal(shown.config.disks[0]!.path, join(folder, 'disks', 'uefi.qcow2'), 'the disk is in the folder the VM lives in');
    assert.ok(await exists(join(folder, 'vm.json')));
    assert.ok(!(await exists(join(other, 'vm.json'))) && !(await exists(join(other, 'disks', 'uefi.qcow2'))), `nothing of the VM is left in ${other}`);
    const held = await openFiles(shown.pid!);
    assert.ok(held.includes(join(folder, 'firmware', 'OVMF_VARS.fd')), held.join(' '));
    assert.match((await exec('uefi', 'echo alive')).stdout, /alive/);
    t.diagnostic(`the killed move was ${folder === target ? 'finished' : 'rolled back'} by recovery`);
    // Back home to its registry entry, while it runs.
    const home = await host.cli(['vm', 'move-storage', 'uefi', '--to', join(host.home, 'vms', uefi.config.id)]);
    assert.equal(home.code, 0, home.stderr);
    assert.ok(!(await exists(join(host.home, 'vms', uefi.config.id, 'location'))));
    assert.ok(!(await exists(folder)), 'the folder it left is removed');
  });

  await t.test('deleting a moved VM removes its folder and its registry entry', async () => {
    assert.equal((await host.cli(['vm', 'delete', 'web', '--force'])).code, 0);
    assert.ok(!(await exists(join(local, 'web-again'))));
    assert.ok(!(await exists(join(host.home, 'vms', web.config.id))));
  });
});
