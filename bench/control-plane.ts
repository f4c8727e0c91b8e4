/**
 * Control-plane latency: from the API's start request to QEMU's exec, median over rounds, for a
 * VM whose disk QEMU opens itself (qcow2) and one whose VHDX disk its storage daemon serves
 * (started first, until its socket listens; our QMP connection to it is made while QEMU starts). QEMU is reached through bench/lib/qemu-exec-stamp.sh, which notes the time
 * of its own exec; that wrapper's own start (bash) is timed too and printed as the baseline.
 * Goal: median <= 20 ms. Run: node dist/bench/control-plane.js (after the build).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VisorClient } from '../src/api/index.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const WRAPPER = join(ROOT, 'bench', 'lib', 'qemu-exec-stamp.sh');
const ROUNDS = Number(process.env.ROUNDS ?? 15);

const wallMs = (): number => performance.timeOrigin + performance.now();
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function lastStamp(file: string): Promise<number> {
  const lines = (await readFile(file, 'utf8')).trim().split('\n');
  return Number(lines.at(-1)) * 1000;
}

async function main(): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), 'visor-bench-cp-'));
  const stamps = join(base, 'stamps');
  await writeFile(stamps, '');
  const env = {
    ...process.env,
    VISOR_HOME: join(base, 'home'),
    VISOR_RUN: join(base, 'run'),
    VISOR_IMAGE_PATH: join(ROOT, 'guests', 'out'),
    VISOR_QEMU: WRAPPER,
    VISOR_EXEC_STAMP: stamps,
  };
  const daemon = spawn(join(ROOT, 'bin', 'visor'), ['daemon'], { env, stdio: 'ignore', detached: true });
  try {
    const client = new VisorClient({ socketPath: join(base, 'run', 'visord.sock') });
    for (let i = 0; i < 100; i += 1) {
      if (await client.json('GET', '/v1/host').then(() => true, () => false)) break;
      await sleep(100);
    }
    for (const format of ['qcow2', 'vhdx'] as const) {
      await client.waitForJob(await client.createVm({ name: `cp-${format}`, diskSize: 2 ** 30, diskFormat: format, startupMemory: 64 * 2 ** 20 }));
    }

    const results: Record<string, number[]> = {};
    for (let round = 0; round < ROUNDS + 1; round += 1) {
      for (const name of ['cp-qcow2', 'cp-vhdx']) {
        const t0 = wallMs();
        const job = await client.startVm(name);
        await client.waitForJob(job);
        const delta = (await lastStamp(stamps)) - t0;
        if (round > 0) (results[name] ??= []).push(delta); // round 0 warms up
        await client.turnOffVm(name);
      }
    }
    // Baseline: the wrapper's own start when spawned straight from Node.
    const wrapper: number[] = [];
    for (let i = 0; i < ROUNDS; i += 1) {
      const t0 = wallMs();
      await new Promise((ok) => spawn(WRAPPER, ['--stamp-only'], { env, stdio: 'ignore' }).on('exit', ok));
      wrapper.push((await lastStamp(stamps)) - t0);
    }
    const fmt = (xs: number[]): string => `median ${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`;
    console.log(`control-plane: API start request → QEMU exec, qcow2 disk: ${fmt(results['cp-qcow2']!)}`);
    console.log(`control-plane: API start request → QEMU exec, VHDX disk (its storage daemon started first): ${fmt(results['cp-vhdx']!)}`);
    console.log(`control-plane: baseline, spawn → the stamping wrapper's exec alone: ${fmt(wrapper)} (included in the figures above); goal: median <= 20 ms`);
  } finally {
    process.kill(-daemon.pid!, 'SIGKILL');
    await sleep(200);
    await new Promise((ok) => spawn('pkill', ['-KILL', '-f', base]).on('exit', ok));
    await rm(base, { recursive: true, force: true });
  }
}

await main();
