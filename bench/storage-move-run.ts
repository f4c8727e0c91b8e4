/**
 * Driver of bench/storage-move.sh: live storage move of a 1 GiB raw disk of the real guest
 * (tiny-x64), against `cp` of the same file in the same run; and the guest's own write
 * throughput during the move against before it (random data, 8 MiB fsynced chunks), each over
 * several rounds. Prints the figures and the ratios.
 *
 *   node dist/bench/storage-move-run.js <work dir> [size MiB] [rounds]
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import type { VmConfig } from '../src/core/index.js';
import { sampleVmConfig } from '../src/core/vm-config-fixture.js';
import { GuestAgent, launchVm } from '../src/engine/qemu/index.js';
import type { QemuInstance } from '../src/engine/qemu/index.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const work = process.argv[2] ?? '/var/tmp/visor-move-bench';
const sizeMiB = Number(process.argv[3] ?? 1024);
const rounds = Number(process.argv[4] ?? 3);
const image = join(process.cwd(), 'guests', 'out', 'tiny-x64.vhdx');

async function dropCaches(): Promise<void> {
  await run('sync');
  await writeFile('/proc/sys/vm/drop_caches', '3\n').catch(() => undefined);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function mbps(bytes: number, ms: number): number {
  return bytes / MiB / (ms / 1000);
}

async function main(): Promise<void> {
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const source = join(work, 'disk.raw');
  // Real bytes, not a hole: a move and a cp of a sparse file would copy nothing.
  await run('sh', ['-c', `head -c ${sizeMiB}M /dev/urandom > ${source}`]);
  const boot = join(work, 'boot.vhdx');
  await copyFile(image, boot);

  const config: VmConfig = sampleVmConfig({
    id: randomUUID(),
    name: 'move-bench',
    memory: { startup: 256 * MiB, dynamic: null },
    disks: [
      { id: 'boot', controller: 'ide', controllerNumber: 0, location: 0, path: boot, format: 'vhdx', readOnly: false },
      { id: 'data', controller: 'scsi', controllerNumber: 0, location: 0, path: source, format: 'raw', readOnly: false },
    ],
    display: { width: 1024, height: 768 },
    createdAt: new Date().toISOString(),
  });
  const paths = { vmDir: join(work, 'vm'), runDir: join(work, 'run') };
  let instance: QemuInstance | null = null;
  let agent: GuestAgent | null = null;
  try {
    instance = await launchVm({ config, paths, accelerator: 'tcg' });
    const serial = join(paths.runDir, 'serial.log');
    const booting = performance.now();
    while (!(await readFile(serial, 'utf8').catch(() => '')).includes('VISOR-GUEST-READY')) {
      if (performance.now() - booting > 120_000) throw new Error('the guest did not boot');
      await sleep(200);
    }
    agent = await GuestAgent.connect(join(paths.runDir, 'qga.sock'), { timeoutMs: 10_000 });
    const sh = async (script: string): Promise<string> => {
      const result = await agent!.exec('/bin/sh', ['-c', script], { timeoutMs: 120_000 });
      if (result.exitCode !== 0) throw new Error(`guest: ${script}: ${result.stderr}`);
      return result.stdout;
    };
    const dev = (await sh(`for d in /sys/block/sd*; do [ "$(cat $d/size)" = ${sizeMiB * 2048} ] && echo \${d##*/}; done; true`)).trim();
    if (!dev) throw new Error('the guest does not see the data disk');
    const uptime = async (): Promise<number> => Number((await sh('cut -d" " -f1 /proc/uptime')).trim());

    // The guest's writer: 8 MiB chunks (fsynced) over the first 512 MiB, stamping each. The data
    // is random bytes made once in the guest's RAM: a real guest writes data, not zeros (which
    // detect-zeroes or a sparse target could turn into no I/O at all).
    await sh('head -c 8388608 /dev/urandom > /tmp/chunk');
    const writer = `rm -f /tmp/stop /tmp/stopped /tmp/w; o=0; while [ ! -e /tmp/stop ]; do dd if=/tmp/chunk of=/dev/${dev} bs=1M count=8 seek=$o conv=fsync 2>/dev/null; cut -d' ' -f1 /proc/uptime >> /tmp/w; o=$(( (o + 8) % 512 )); done; touch /tmp/stopped`;
    const chunksBetween = async (from: number, to: number): Promise<number> => {
      const stamps = (await sh('cat /tmp/w')).trim().split('\n').map(Number);
      return stamps.filter((s) => s > from && s <= to).length;
    };

    // 1. cp of the disk's current file against a live move of it, alternating, from a cold
    // page cache each time; each move leaves the disk on a new file and deletes the old one.
    let moves = 0;
    const timeCp = async (into: number[]): Promise<void> => {
      const current = config.disks[1]!.path;
      await dropCaches();
      const copy = join(work, 'cp.raw');
      const t0 = performance.now();
      await run('sh', ['-c', `cp ${current} ${copy} && sync ${copy}`]);
      into.push(performance.now() - t0);
      await rm(copy);
    };
    const timeMove = async (into: number[]): Promise<void> => {
      await dropCaches();
      const next = join(work, `disk-${++moves}.raw`);
      const t0 = performance.now();
      const result = await instance!.moveStorage([{ disk: config.disks[1]!, path: next, format: 'raw' }]);
      await run('sync', [next]);
      into.push(performance.now() - t0);
      for (const old of result.oldPaths) await rm(old);
      config.disks[1] = { ...config.disks[1]!, path: next };
    };
    const cpTimes: number[] = [];
    const moveTimes: number[] = [];
    for (let round = 0; round < rounds; round++) {
      if (round % 2 === 0) {
        await timeCp(cpTimes);
        await timeMove(moveTimes);
      } else {
        await timeMove(moveTimes);
        await timeCp(cpTimes);
      }
    }
    const cpMs = median(cpTimes);
    const idleMs = median(moveTimes);

    // 2. With the guest writing throughout: each round, the guest's write throughput alone for
    // ~4 s, then during a move (its whole time, final sync included); and cp of the disk's file
    // under the same guest load (told beside, not the goal's baseline).
    await sh(`(${writer}) >/dev/null 2>&1 &`);
    await sleep(1_000);
    const busyTimes: number[] = [];
    const cpBusyTimes: number[] = [];
    const before: number[] = [];
    const during: number[] = [];
    for (let round = 0; round < rounds; round++) {
      let u0 = await uptime();
      await sleep(4_000);
      let u1 = await uptime();
      before.push(((await chunksBetween(u0, u1)) * 8) / (u1 - u0));
      u0 = await uptime();
      await timeMove(busyTimes);
      u1 = await uptime();
      during.push(((await chunksBetween(u0, u1)) * 8) / (u1 - u0));
      await timeCp(cpBusyTimes);
    }
    await sh('touch /tmp/stop; while [ ! -e /tmp/stopped ]; do usleep 100000; done');
    const busyMs = median(busyTimes);
    const cpBusyMs = median(cpBusyTimes);
    const beforeMbps = median(before);
    const duringMbps = median(during);
    const writeRatio = median(during.map((d, i) => d / before[i]!));

    const bytes = sizeMiB * MiB;
    const cp = mbps(bytes, cpMs);
    const idle = mbps(bytes, idleMs);
    const busy = mbps(bytes, busyMs);
    const cpBusy = mbps(bytes, cpBusyMs);
    const list = (times: number[]): string => times.map((t) => t.toFixed(0)).join(', ');
    console.log(`disk: ${sizeMiB} MiB raw of random bytes; cold page cache; times include the final sync; medians of ${rounds} rounds`);
    console.log(`cp + sync:                     ${cpMs.toFixed(0).padStart(6)} ms  ${cp.toFixed(0).padStart(5)} MiB/s  (rounds: ${list(cpTimes)} ms)`);
    console.log(`live move, guest idle:         ${idleMs.toFixed(0).padStart(6)} ms  ${idle.toFixed(0).padStart(5)} MiB/s  ratio to cp ${(idle / cp).toFixed(2)}  (rounds: ${list(moveTimes)} ms)`);
    console.log(`live move, guest writing:      ${busyMs.toFixed(0).padStart(6)} ms  ${busy.toFixed(0).padStart(5)} MiB/s  ratio to cp ${(busy / cp).toFixed(2)}  (rounds: ${list(busyTimes)} ms)`);
    console.log(`cp + sync, guest writing:      ${cpBusyMs.toFixed(0).padStart(6)} ms  ${cpBusy.toFixed(0).padStart(5)} MiB/s  (rounds: ${list(cpBusyTimes)} ms; move's ratio to it ${(busy / cpBusy).toFixed(2)})`);
    console.log(`guest writes before the move:  ${beforeMbps.toFixed(1).padStart(6)} MiB/s  (rounds: ${before.map((b) => b.toFixed(1)).join(', ')})`);
    console.log(`guest writes during the move:  ${duringMbps.toFixed(1).padStart(6)} MiB/s  ratio ${writeRatio.toFixed(2)}  (rounds: ${during.map((d) => d.toFixed(1)).join(', ')})`);
  } finally {
    agent?.dispose();
    if (instance) await instance.quit();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
