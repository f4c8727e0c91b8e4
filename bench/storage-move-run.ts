/**
 * Driver of bench/storage-move.sh: live storage move of a 1 GiB raw disk of the real guest
 * (tiny-x64), against `cp` of the same file in the same run; and the guest's own write
 * throughput during the move against before it. Prints the figures and the ratios.
 *
 *   node dist/bench/storage-move-run.js <work dir> [size MiB]
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import type { VmConfig } from '../src/core/index.js';
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

  const config: VmConfig = {
    schemaVersion: 1,
    id: randomUUID(),
    name: 'move-bench',
    generation: 1,
    secureBoot: false,
    machineType: null,
    processors: { count: 2 },
    memory: { startup: 256 * MiB, dynamic: null },
    bootOrder: ['disk'],
    disks: [
      { id: 'boot', controller: 'ide', controllerNumber: 0, location: 0, path: boot, format: 'vhdx', readOnly: false },
      { id: 'data', controller: 'scsi', controllerNumber: 0, location: 0, path: source, format: 'raw', readOnly: false },
    ],
    dvd: null,
    networkAdapters: [],
    display: { width: 1024, height: 768 },
    automaticStartAction: 'nothing',
    automaticStopAction: 'save',
    notes: '',
    sourceImage: null,
    createdAt: new Date().toISOString(),
  };
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

    // The guest's writer: 8 MiB chunks (fsynced) over the first 512 MiB, stamping each.
    const writer = `rm -f /tmp/stop /tmp/w; o=0; while [ ! -e /tmp/stop ]; do dd if=/dev/zero of=/dev/${dev} bs=1M count=8 seek=$o conv=fsync 2>/dev/null; cut -d' ' -f1 /proc/uptime >> /tmp/w; o=$(( (o + 8) % 512 )); done; touch /tmp/stopped`;
    const chunksBetween = async (from: number, to: number): Promise<number> => {
      const stamps = (await sh('cat /tmp/w')).trim().split('\n').map(Number);
      return stamps.filter((s) => s > from && s <= to).length;
    };

    // 1. cp of the disk's current file against a live move of it, alternating, from a cold
    // page cache each time; each move leaves the disk on a new file and deletes the old one.
    const cpTimes: number[] = [];
    const moveTimes: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const timeCp = async (): Promise<void> => {
        const current = config.disks[1]!.path;
        await dropCaches();
        const copy = join(work, 'cp.raw');
        const t0 = performance.now();
        await run('sh', ['-c', `cp ${current} ${copy} && sync ${copy}`]);
        cpTimes.push(performance.now() - t0);
        await rm(copy);
      };
      const timeMove = async (): Promise<void> => {
        await dropCaches();
        const next = join(work, `disk-${round + 1}.raw`);
        const t0 = performance.now();
        const result = await instance!.moveStorage([{ disk: config.disks[1]!, path: next, format: 'raw' }]);
        await run('sync', [next]);
        moveTimes.push(performance.now() - t0);
        for (const old of result.oldPaths) await rm(old);
        config.disks[1] = { ...config.disks[1]!, path: next };
      };
      if (round % 2 === 0) {
        await timeCp();
        await timeMove();
      } else {
        await timeMove();
        await timeCp();
      }
    }
    const cpMs = median(cpTimes);
    const idleMs = median(moveTimes);

    // 2. The guest's write throughput alone, for ~6 s.
    await sh(`(${writer}) >/dev/null 2>&1 &`);
    await sleep(1_000);
    let u0 = await uptime();
    await sleep(6_000);
    let u1 = await uptime();
    const beforeMbps = ((await chunksBetween(u0, u1)) * 8) / (u1 - u0);

    // 3. Move while the guest writes.
    await dropCaches();
    const busyTarget = join(work, 'busy.raw');
    const beforeBusy = config.disks[1]!.path;
    u0 = await uptime();
    const started = performance.now();
    await instance.moveStorage([{ disk: config.disks[1]!, path: busyTarget, format: 'raw' }]);
    await run('sync', [busyTarget]);
    const busyMs = performance.now() - started;
    await rm(beforeBusy);
    u1 = await uptime();
    const duringMbps = ((await chunksBetween(u0, u1)) * 8) / (u1 - u0);
    await sh('touch /tmp/stop; while [ ! -e /tmp/stopped ]; do usleep 100000; done');

    const bytes = sizeMiB * MiB;
    const cp = mbps(bytes, cpMs);
    const idle = mbps(bytes, idleMs);
    const busy = mbps(bytes, busyMs);
    console.log(`disk: ${sizeMiB} MiB raw of random bytes; cold page cache; times include the final sync; medians of ${rounds} alternating rounds`);
    console.log(`cp + sync:                     ${cpMs.toFixed(0).padStart(6)} ms  ${cp.toFixed(0).padStart(5)} MiB/s  (rounds: ${cpTimes.map((t) => t.toFixed(0)).join(', ')} ms)`);
    console.log(`live move, guest idle:         ${idleMs.toFixed(0).padStart(6)} ms  ${idle.toFixed(0).padStart(5)} MiB/s  ratio to cp ${(idle / cp).toFixed(2)}  (rounds: ${moveTimes.map((t) => t.toFixed(0)).join(', ')} ms)`);
    console.log(`live move, guest writing:      ${busyMs.toFixed(0).padStart(6)} ms  ${busy.toFixed(0).padStart(5)} MiB/s  ratio to cp ${(busy / cp).toFixed(2)}`);
    console.log(`guest writes before the move:  ${beforeMbps.toFixed(1).padStart(6)} MiB/s`);
    console.log(`guest writes during the move:  ${duringMbps.toFixed(1).padStart(6)} MiB/s  ratio ${(duringMbps / beforeMbps).toFixed(2)}`);
  } finally {
    agent?.dispose();
    if (instance) await instance.quit();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
