import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { access, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { VisorClient } from '../../src/api/index.js';
import type { DiskAttachment, VmView } from '../../src/core/index.js';
import { VisorTestHost } from '../support/visor-host.js';

const gone = (path: string): Promise<boolean> => stat(path).then(() => false, () => true);

/** The guest's data disk: the one of 64 MiB (131072 sectors). */
const FIND_DISK = 'd=; for x in /sys/block/sd*; do [ "$(cat $x/size)" = 131072 ] && d=${x##*/}; done; [ -n "$d" ] || { echo no disk; exit 9; }';
/** Writes 64 KiB blocks of a pattern unique to each, fsynced, and records each block's md5. */
const WRITER = `${FIND_DISK}; : > /tmp/sums; i=0; while [ $i -lt 320 ]; do
  yes "visor-block-$i-$RANDOM" | head -c 65536 > /tmp/b
  dd if=/tmp/b of=/dev/$d bs=65536 seek=$i conv=fsync 2>/dev/null || { echo write failed $i; exit 1; }
  echo "$i $(md5sum < /tmp/b | cut -d' ' -f1)" >> /tmp/sums
  i=$((i+1))
done; echo wrote $i`;
/** Reads every recorded block back from the disk (not the page cache) and checks its md5. */
const CHECKER = `${FIND_DISK}; sync; echo 3 > /proc/sys/vm/drop_caches; bad=0; n=0
while read i s; do n=$((n+1)); r=$(dd if=/dev/$d bs=65536 skip=$i count=1 2>/dev/null | md5sum | cut -d' ' -f1); [ "$r" = "$s" ] || { echo BAD $i; bad=$((bad+1)); }; done < /tmp/sums
echo checked $n bad $bad`;

/**
 * Live storage move while the guest writes: a checksummed pattern written during the move
 * reads back whole from the new place, vm.json names the new files, the VM still runs, and no
 * old disk file is left. Bad input is refused before a job.
 */
test('live storage move while the guest writes a checksummed pattern', { timeout: 300_000 }, async (t) => {
  const host = await VisorTestHost.create();
  t.after(() => host.dispose());
  await host.startDaemon();
  const target = join(host.home, 'elsewhere');
  await mkdir(target, { recursive: true });

  const vm = await host.json<VmView>(['vm', 'create', 'g', '--image', 'tiny-x64', '--memory', '192M']);
  await host.json(['vm', 'disk', 'add', 'g', '--size', '64M']);
  const before = await host.json<DiskAttachment[]>(['vm', 'disk', 'list', 'g']);
  assert.equal((await host.cli(['vm', 'start', 'g'])).code, 0);
  await host.waitForSerial(vm.config.id, /VISOR-GUEST-READY/, 180_000);

  await t.test('bad input is refused before a job', async () => {
    const jobs = (await host.json<unknown[]>(['job', 'list'])).length;
    const noFolder = await host.cli(['vm', 'move-storage', 'g', '--to', '/no/such/folder', '--disks-only']);
    assert.equal(noFolder.code, 3, noFolder.stderr);
    // A whole-folder move never goes to a folder holding the VM's own.
    const whole = await host.cli(['vm', 'move-storage', 'g', '--to', host.home]);
    assert.equal(whole.code, 2, whole.stderr);
    assert.match(whole.stderr, /contains the VM's folder/);
    assert.equal((await host.json<unknown[]>(['job', 'list'])).length, jobs, 'no job was made');
  });

  await t.test('the move runs while the guest writes; every block reads back; the old files are gone', async () => {
    const writing = host.cli(['vm', 'exec', 'g', '--timeout', '240', '--', 'sh', '-c', WRITER], { timeoutMs: 250_000 });
    await new Promise((r) => setTimeout(r, 1500));
    const moved = await host.cli(['vm', 'move-storage', 'g', '--to', target, '--disks-only']);
    assert.equal(moved.code, 0, moved.stderr);
    const wrote = await writing;
    assert.equal(wrote.code, 0, wrote.stderr + wrote.stdout);
    assert.match(wrote.stdout, /wrote 320/);

    const check = await host.cli(['vm', 'exec', 'g', '--timeout', '120', '--', 'sh', '-c', CHECKER]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /checked 320 bad 0/, check.stdout);

    const after = await host.json<DiskAttachment[]>(['vm', 'disk', 'list', 'g']);
    assert.equal(after.length, before.length);
    for (const disk of after) assert.ok(disk.path.startsWith(`${target}/`), `${disk.id} now lives in the new folder: ${disk.path}`);
    for (const disk of before) assert.ok(await gone(disk.path), `the old file ${disk.path} is deleted`);
    const shown = await host.json<VmView>(['vm', 'show', 'g']);
    assert.equal(shown.state, 'running');
    const again = await host.cli(['vm', 'exec', 'g', '--', 'sh', '-c', 'echo still-running']);
    assert.match(again.stdout, /still-running/);
  });

  await t.test('a cancelled move leaves the VM on its files, untouched, and no partial target', async () => {
    const second = join(host.home, 'cancelled');
    await mkdir(second);
    // No Prefer: wait: the test cancels or kills the job while it runs.
    const client = new VisorClient({ socketPath: join(host.run, 'visord.sock'), preferWaitSeconds: 0 });
    const onSource = await host.json<DiskAttachment[]>(['vm', 'disk', 'list', 'g']);
    const job = await client.moveVmStorage('g', { destination: second, disksOnly: true });
    await client.cancelJob(job.id);
    const done = await client.waitForJob(job);
    assert.equal(done.state, 'cancelled', JSON.stringify(done.error));
    assert.deepEqual(await host.json<DiskAttachment[]>(['vm', 'disk', 'list', 'g']), onSource);
    assert.deepEqual(await readdir(second), [], 'no partial target is left');
    const check = await host.cli(['vm', 'exec', 'g', '--timeout', '120', '--', 'sh', '-c', CHECKER]);
    assert.match(check.stdout, /checked 320 bad 0/, check.stdout);
    assert.equal((await host.json<VmView>(['vm', 'show', 'g'])).state, 'running');
  });

  await t.test('a daemon killed mid-move leaves the VM running from one consistent place, and the move can be retried', async () => {
    const fourth = join(host.home, 'killed');
    await mkdir(fourth);
    // No Prefer: wait: the test cancels or kills the job while it runs.
    const client = new VisorClient({ socketPath: join(host.run, 'visord.sock'), preferWaitSeconds: 0 });
    const onSource = await host.json<DiskAttachment[]>(['vm', 'disk', 'list', 'g']);
    const recordFile = join(host.home, 'vms', vm.config.id, 'storage-move.json');
    await client.moveVmStorage('g', { destination: fourth, disksOnly: true });
    for (let i = 0; i < 2000; i++) {
      if (await access(recordFile).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    await host.killDaemon();
    await host.startDaemon();
    const shown = await host.json<VmView>(['vm', 'show', 'g']);
    assert.equal(shown.state, 'running');
    assert.ok(await gone(recordFile), 'the move record is settled');
    const now = await host.json<DiskAttachment[]>(['vm', 'disk', 'list', 'g']);
    const finished = now.every((d) => d.path.startsWith(`${fourth}/`));
    const rolledBack = JSON.stringify(now) === JSON.stringify(onSource);
    assert.ok(finished || rolledBack, `one consistent place: ${JSON.stringify(now)}`);
    for (const [i, d] of now.entries()) {
      const other = finished ? onSource[i]!.path : join(fourth, d.path.split('/').pop()!);
      assert.ok(await gone(other), `the file the VM does not use is gone: ${other}`);
    }
    const check = await host.cli(['vm', 'exec', 'g', '--timeout', '120', '--', 'sh', '-c', CHECKER]);
    assert.match(check.stdout, /checked 320 bad 0/, check.stdout);
    if (rolledBack) {
      const retried = await host.cli(['vm', 'move-storage', 'g', '--to', fourth, '--disks-only']);
      assert.equal(retried.code, 0, retried.stderr);
    }
    t.diagnostic(`the killed move was ${finished ? 'finished' : 'rolled back'} by recovery`);
  });

  await t.test('an off VM\'s disks are copied, switched and the old files deleted', async () => {
    assert.equal((await host.cli(['vm', 'stop', 'g', '--force'])).code, 0);
    const third = join(host.home, 'third');
    await mkdir(third);
    const onSource = await host.json<DiskAttachment[]>(['vm', 'disk', 'list', 'g']);
    const sums = await Promise.all(onSource.map(async (d) => createHash('md5').update(await readFile(d.path)).digest('hex')));
    const moved = await host.cli(['vm', 'move-storage', 'g', '--to', third, '--disks-only']);
    assert.equal(moved.code, 0, moved.stderr);
    const after = await host.json<DiskAttachment[]>(['vm', 'disk', 'list', 'g']);
    for (const [i, d] of after.entries()) {
      assert.ok(d.path.startsWith(`${third}/`), d.path);
      assert.equal(createHash('md5').update(await readFile(d.path)).digest('hex'), sums[i], `${d.id} has the same bytes`);
      assert.ok(await gone(onSource[i]!.path));
    }
  });
});
