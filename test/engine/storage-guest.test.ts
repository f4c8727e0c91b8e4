import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { DiskAttachment } from '../../src/core/index.js';
import { GuestAgent, diskServing, launchVm } from '../../src/engine/qemu/index.js';
import type { MoveRecord, QemuInstance } from '../../src/engine/qemu/index.js';
import { TestVm } from './vm-fixture.js';

/**
 * The storage issue with the real guest (tiny-x64, skipped when not built), one booted guest
 * shared by the steps: disks on IDE, SCSI and virtio all seen; SCSI hot-add/remove (qcow2 in
 * QEMU, VHDX through the storage daemon, a SCSI controller the VM did not have); DVD insert and
 * eject; a live move of a QEMU disk and a storage-daemon disk while the guest writes checksummed
 * blocks.
 */
const run = promisify(execFile);
const IMAGE = join(process.cwd(), 'guests', 'out', 'tiny-x64.vhdx');
const READY = 'VISOR-GUEST-READY';
const haveImage = await stat(IMAGE).then(
  () => true,
  () => false,
);

async function waitForSerial(path: string, text: string, timeoutMs: number): Promise<void> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if ((await readFile(path, 'utf8').catch(() => '')).includes(text)) return;
    await sleep(100);
  }
  throw new Error(`"${text}" did not appear on the serial port within ${timeoutMs} ms`);
}

/** Fills the first 512 bytes of an image with `byte`, through QEMU's own block layer. */
async function stamp(path: string, format: string, byte: number): Promise<void> {
  await run('qemu-io', ['-f', format, '-c', `write -P ${byte} 0 512`, path]);
}

async function image(dir: string, name: string, format: 'qcow2' | 'raw' | 'vhdx', size: string, byte: number): Promise<string> {
  const path = join(dir, name);
  await run('qemu-img', ['create', '-q', '-f', format, path, size]);
  await stamp(path, format, byte);
  return path;
}

/** A shell function printing "<dev> <first byte in hex>" for every disk the guest sees. */
const LIST_DISKS = `for d in /sys/block/*; do n=\${d##*/}; case $n in loop*|ram*) continue;; esac; b=$(dd if=/dev/$n bs=512 count=1 2>/dev/null | od -An -tx1 -N1 | tr -d ' '); echo "$n $b"; done`;

describe('storage with a real guest (tiny-x64)', { skip: haveImage ? false : 'guests/out/tiny-x64.vhdx is not built' }, () => {
  let vm: TestVm;
  let instance: QemuInstance | null = null;
  let agent: GuestAgent | null = null;

  const sh = async (script: string, timeoutMs = 30_000): Promise<string> => {
    assert.ok(agent);
    const result = await agent.exec('/bin/sh', ['-c', script], { timeoutMs });
    assert.equal(result.exitCode, 0, `guest: ${script}\n${result.stderr}`);
    return result.stdout;
  };
  /** dev name → first byte, as the guest sees it now (after a short settle for hot-plug). */
  const guestDisks = async (): Promise<Map<string, string>> => {
    const out = await sh(LIST_DISKS);
    return new Map(out.trim().split('\n').filter(Boolean).map((line) => line.split(' ') as [string, string]));
  };
  const waitForDisks = async (want: (disks: Map<string, string>) => boolean, what: string): Promise<Map<string, string>> => {
    const started = performance.now();
    for (;;) {
      const disks = await guestDisks();
      if (want(disks)) return disks;
      if (performance.now() - started > 20_000) assert.fail(`${what}: the guest sees ${JSON.stringify([...disks])}`);
      await sleep(300);
    }
  };

  before(async () => {
    vm = await TestVm.create({ generation: 1, disks: [], dvd: { controller: 'ide', controllerNumber: 1, location: 0, iso: null } });
    const boot = join(vm.dir, 'tiny.vhdx');
    await copyFile(IMAGE, boot);
    const add = (disk: Omit<DiskAttachment, 'readOnly'>): void => {
      vm.config.disks.push({ ...disk, readOnly: false });
    };
    add({ id: 'boot', controller: 'ide', controllerNumber: 0, location: 0, path: boot, format: 'vhdx' });
    add({ id: 'ide1', controller: 'ide', controllerNumber: 0, location: 1, path: await image(vm.dir, 'ide1.raw', 'raw', '16M', 0x49), format: 'raw' });
    add({ id: 'scsi', controller: 'scsi', controllerNumber: 0, location: 0, path: await image(vm.dir, 'scsi.qcow2', 'qcow2', '32M', 0x53), format: 'qcow2' });
    add({ id: 'sv', controller: 'scsi', controllerNumber: 0, location: 1, path: await image(vm.dir, 'sv.vhdx', 'vhdx', '32M', 0x58), format: 'vhdx' });
    add({ id: 'vio', controller: 'virtio', controllerNumber: 0, location: 0, path: await image(vm.dir, 'vio.qcow2', 'qcow2', '16M', 0x56), format: 'qcow2' });
    vm.config.memory.startup = 256 * 1024 * 1024;
    instance = await launchVm({ config: vm.config, paths: vm.paths, accelerator: 'tcg' });
    await waitForSerial(join(vm.paths.runDir, 'serial.log'), READY, 90_000);
    agent = await GuestAgent.connect(join(vm.paths.runDir, 'qga.sock'), { timeoutMs: 10_000 });
  });

  after(async () => {
    agent?.dispose();
    if (instance) await instance.quit().catch(() => undefined);
    assert.deepEqual(await vm.dispose(), [], 'no QEMU or storage daemon may outlive the test');
  });

  it('sees disks on IDE, SCSI (QEMU and storage daemon) and virtio, each with the first sector the host wrote', async () => {
    const disks = await guestDisks();
    const bytes = [...disks.values()].sort();
    for (const byte of ['49', '53', '56', '58']) assert.ok(bytes.includes(byte), `0x${byte} in ${JSON.stringify([...disks])}`);
    assert.ok([...disks.keys()].some((name) => name.startsWith('vd')), 'a virtio disk is /dev/vdX');
  });

  it('hot-adds SCSI disks (qcow2 on a new controller, VHDX through the storage daemon) and hot-removes them', async (t) => {
    assert.ok(instance);
    const qcow = await image(vm.dir, 'hot.qcow2', 'qcow2', '16M', 0x48);
    const vhdx = await image(vm.dir, 'hot.vhdx', 'vhdx', '16M', 0x4a);
    let started = performance.now();
    await instance.addDisk({ id: 'hot', controller: 'scsi', controllerNumber: 1, location: 3, path: qcow, format: 'qcow2', readOnly: false }, { generation: 1 });
    await instance.addDisk({ id: 'hotv', controller: 'scsi', controllerNumber: 0, location: 5, path: vhdx, format: 'vhdx', readOnly: false }, { generation: 1 });
    await waitForDisks((d) => [...d.values()].includes('48') && [...d.values()].includes('4a'), 'hot-added disks');
    t.diagnostic(`hot-added disks visible in the guest after ${Math.round(performance.now() - started)} ms (no rescan)`);
    await assert.rejects(
      instance.addDisk({ id: 'nope', controller: 'ide', controllerNumber: 1, location: 1, path: qcow, format: 'qcow2', readOnly: false }, { generation: 1 }),
      (error: Error & { code?: string }) => error.code === 'disk-hotplug-unsupported',
    );
    started = performance.now();
    await instance.removeDisk('hot');
    await instance.removeDisk('hotv');
    await waitForDisks((d) => !(([...d.values()].includes('48')) || [...d.values()].includes('4a')), 'hot-removed disks');
    t.diagnostic(`hot-removed in ${Math.round(performance.now() - started)} ms`);
    const storage = instance.storage;
    assert.ok(storage);
    const exports = await storage.qmp.queryBlockExports();
    assert.deepEqual(exports.map((e) => e.id).sort(), ['export-disk-boot', 'export-disk-sv']);
    const qemuNodes = (await instance.qmp.queryNamedBlockNodes()).map((n) => n['node-name']);
    assert.ok(!qemuNodes.some((n) => n.startsWith('disk-hot')), `no node left in QEMU: ${qemuNodes.join(' ')}`);
  });

  it('hot-adds a virtio disk (PCI, ACPI hot-plug) and removes it with the guest\'s consent', async (t) => {
    assert.ok(instance);
    const path = await image(vm.dir, 'hotvio.qcow2', 'qcow2', '8M', 0x76);
    const started = performance.now();
    await instance.addDisk({ id: 'hotvio', controller: 'virtio', controllerNumber: 0, location: 1, path, format: 'qcow2', readOnly: false }, { generation: 1 });
    await waitForDisks((d) => [...d.values()].includes('76'), 'hot-added virtio disk');
    t.diagnostic(`virtio disk visible after ${Math.round(performance.now() - started)} ms`);
    await instance.removeDisk('hotvio');
    await waitForDisks((d) => ![...d.values()].includes('76'), 'hot-removed virtio disk');
    assert.ok(!(await instance.qmp.queryNamedBlockNodes()).some((n) => n['node-name'].startsWith('disk-hotvio')));
  });

  it('inserts an ISO into the DVD drive, then swaps it and ejects it while the guest runs', async () => {
    assert.ok(instance);
    const iso1 = join(vm.dir, 'one.iso');
    const iso2 = join(vm.dir, 'two.iso');
    await writeFile(iso1, Buffer.alloc(1024 * 1024, 0x31));
    await writeFile(iso2, Buffer.alloc(1024 * 1024, 0x32));
    const readDvd = 'dd if=/dev/sr0 bs=2048 count=1 2>/dev/null | od -An -tx1 -N1 | tr -d " "';
    await instance.changeDvdMedium(iso1);
    assert.equal((await waitForDvd(readDvd, '31')).trim(), '31');
    await instance.changeDvdMedium(iso2);
    assert.equal((await waitForDvd(readDvd, '32')).trim(), '32');
    await instance.changeDvdMedium(null);
    const blocks = await instance.qmp.queryBlock();
    const dvd = blocks.find((b) => b.qdev === 'dvd0');
    assert.equal(dvd?.inserted, undefined, 'the drive is empty');
    assert.equal(dvd?.tray_open, false, 'and its tray closed');
  });

  async function waitForDvd(script: string, want: string): Promise<string> {
    const started = performance.now();
    for (;;) {
      const out = await sh(`${script} || true`);
      if (out.trim() === want || performance.now() - started > 15_000) return out;
      await sleep(300);
    }
  }

  it('moves a QEMU disk and a storage-daemon disk live while the guest writes checksummed blocks', async (t) => {
    assert.ok(instance);
    const disks = await guestDisks();
    const dev = [...disks].find(([, byte]) => byte === '53')?.[0];
    assert.ok(dev, 'the SCSI qcow2 disk');
    // The guest writes 64 KiB blocks 1..255 of the disk, round after round, each from
    // /dev/urandom, logging "block md5" after each write, until /tmp/stop appears.
    const writer = `i=1; r=0; rm -f /tmp/stop /tmp/log; : > /tmp/log
      while [ ! -e /tmp/stop ]; do
        head -c 65536 /dev/urandom > /tmp/blk
        s=$(md5sum < /tmp/blk | cut -d' ' -f1)
        dd if=/tmp/blk of=/dev/${dev} bs=65536 seek=$i conv=fsync 2>/dev/null || echo "write $i failed" >> /tmp/errors
        echo "$i $s" >> /tmp/log
        i=$((i + 1)); [ $i -gt 255 ] && { i=1; r=$((r + 1)); }
      done; echo done > /tmp/stopped`;
    await sh(`(${writer}) >/dev/null 2>&1 &`);
    await sleep(2_000);
    const before = Number((await sh('wc -l < /tmp/log')).trim());

    const records: MoveRecord[] = [];
    const scsi = vm.config.disks.find((d) => d.id === 'scsi');
    const sv = vm.config.disks.find((d) => d.id === 'sv');
    assert.ok(scsi && sv);
    const progress: number[] = [];
    const started = performance.now();
    const result = await instance.moveStorage(
      [
        { disk: scsi, path: join(vm.dir, 'moved-scsi.raw'), format: 'raw' },
        { disk: sv, path: join(vm.dir, 'moved-sv.qcow2'), format: 'qcow2' },
      ],
      { signal: AbortSignal.timeout(60_000), progress: (f) => progress.push(f) },
      // 16 MiB/s per disk: the copy takes ~2 s, so the guest writes all through it.
      { onRecord: (r) => void records.push(r), speed: 16 * 1024 * 1024 },
    );
    const ms = Math.round(performance.now() - started);
    const during = Number((await sh('wc -l < /tmp/log')).trim()) - before;
    await sh('touch /tmp/stop; while [ ! -e /tmp/stopped ]; do usleep 100000; done');
    const written = Number((await sh('wc -l < /tmp/log')).trim());
    t.diagnostic(`moved 2 x 32 MiB in ${ms} ms; the guest wrote ${written} blocks, ${during} of them during the move`);
    assert.ok(during >= 5, `the guest wrote during the move (${during} blocks)`);
    assert.deepEqual(records.map((r) => r.disks.map((d) => d.phase).join(',')), ['copying,copying', 'pivoting,pivoting', 'pivoted,pivoted']);
    assert.ok(progress.at(-1) === 1);

    // Every block reads back with the checksum of its last write, from the device (caches dropped).
    const verify = `sync; echo 3 > /proc/sys/vm/drop_caches
      awk '{ last[$1] = $2 } END { for (b in last) print b, last[b] }' /tmp/log > /tmp/want
      bad=0; n=0
      while read b s; do
        got=$(dd if=/dev/${dev} bs=65536 skip=$b count=1 2>/dev/null | md5sum | cut -d' ' -f1)
        n=$((n + 1)); [ "$got" = "$s" ] || bad=$((bad + 1))
      done < /tmp/want
      echo "$n $bad $(cat /tmp/errors 2>/dev/null | wc -l)"`;
    const [checked, bad, errors] = (await sh(verify, 60_000)).trim().split(' ').map(Number);
    t.diagnostic(`${checked} blocks checked, ${bad} bad, ${errors} write errors`);
    assert.ok((checked ?? 0) > 0);
    assert.equal(bad, 0);
    assert.equal(errors, 0);

    // The VM runs from the new files: QEMU's node and the storage daemon's export say so.
    const nowScsi = await diskServing(instance.qmp, instance.storage?.qmp ?? null, 'scsi');
    const nowSv = await diskServing(instance.qmp, instance.storage?.qmp ?? null, 'sv');
    assert.equal(nowScsi.filename, join(vm.dir, 'moved-scsi.raw'));
    assert.equal(nowScsi.where, 'qemu');
    assert.equal(nowSv.filename, join(vm.dir, 'moved-sv.qcow2'));
    assert.equal(nowSv.where, 'storage-daemon');
    const qemuFiles = (await instance.qmp.queryNamedBlockNodes()).map((n) => n.file);
    assert.ok(!qemuFiles.includes(scsi.path), 'QEMU no longer opens the old file');
    const daemonFiles = (await instance.storage!.qmp.queryNamedBlockNodes()).map((n) => n.file);
    assert.ok(!daemonFiles.includes(sv.path), 'nor does the storage daemon');

    // The caller deletes the old files once every disk has pivoted.
    assert.deepEqual(result.oldPaths.sort(), [scsi.path, sv.path].sort());
    for (const path of result.oldPaths) await rm(path);
    for (const path of [scsi.path, sv.path]) await assert.rejects(stat(path));
    const info = JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', join(vm.dir, 'moved-sv.qcow2')])).stdout) as { format: string };
    assert.equal(info.format, 'qcow2');
  });
});
