import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runtimeFiles } from '../../src/engine/qemu/runtime-files.js';

/** The checkout's root, from dist/test/support. */
export const REPO_ROOT = resolve(import.meta.dirname, '..', '..', '..');
export const VISOR_BIN = join(REPO_ROOT, 'bin', 'visor');
export const IMAGES_DIR = join(REPO_ROOT, 'guests', 'out');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * An isolated Visor instance for a test: its own VISOR_HOME and VISOR_RUN in a temp folder, a
 * daemon started through the CLI like a user would, and a cleanup that leaves no process
 * behind (QEMU and storage daemons found through their pidfiles are killed).
 */
export class VisorTestHost {
  private daemon: ChildProcess | null = null;

  private constructor(
    readonly home: string,
    readonly run: string,
  ) {}

  static async create(): Promise<VisorTestHost> {
    const base = await mkdtemp(join(tmpdir(), 'visor-test-'));
    return new VisorTestHost(join(base, 'home'), join(base, 'run'));
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, VISOR_HOME: this.home, VISOR_RUN: this.run, VISOR_IMAGE_PATH: IMAGES_DIR };
  }

  /** Runs `visor ARGS...` and collects its output. */
  cli(args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(VISOR_BIN, args, { env: this.env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolvePromise({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      child.stdin.end(options.input ?? '');
    });
  }

  /** `visor ARGS... --json`, which must succeed; returns the parsed output. */
  async json<T = unknown>(args: string[]): Promise<T> {
    const result = await this.cli([...args, '--json']);
    if (result.code !== 0) throw new Error(`visor ${args.join(' ')} exited ${result.code}: ${result.stderr}${result.stdout}`);
    return JSON.parse(result.stdout) as T;
  }

  /** Starts `visor daemon` in the foreground of a child process and waits for it to answer. */
  async startDaemon(extraArgs: string[] = []): Promise<ChildProcess> {
    const child = spawn(VISOR_BIN, ['daemon', ...extraArgs], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let log = '';
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    this.daemon = child;
    for (let i = 0; i < 200; i += 1) {
      if (child.exitCode !== null) throw new Error(`visor daemon exited ${child.exitCode}: ${log}`);
      const probe = await this.cli(['host', 'info', '--json'], { timeoutMs: 5000 }).catch(() => null);
      if (probe?.code === 0) return child;
      await sleep(100);
    }
    throw new Error(`visor daemon did not answer within 20 s: ${log}`);
  }

  /** kill -9 of the daemon, as a crash would. */
  async killDaemon(): Promise<void> {
    const child = this.daemon;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.daemon = null;
  }

  /** Pids of every daemon-spawned process named in pidfiles under VISOR_RUN. */
  async vmProcessPids(): Promise<number[]> {
    const vmsDir = join(this.run, 'vms');
    const pids: number[] = [];
    for (const id of await readdir(vmsDir).catch(() => [] as string[])) {
      const files = runtimeFiles({ vmDir: '', runDir: join(vmsDir, id) });
      for (const file of [files.pidFile, files.storagePidFile]) {
        const text = await readFile(file, 'utf8').catch(() => '');
        const pid = Number.parseInt(text, 10);
        if (pid > 0) pids.push(pid);
      }
    }
    return pids;
  }

  vmRunDir(vmId: string): string {
    return join(this.run, 'vms', vmId);
  }

  /** Waits until the VM's serial log has a line matching `pattern`; returns that line. */
  async waitForSerial(vmId: string, pattern: RegExp, timeoutMs = 90_000, fromOffset = 0): Promise<string> {
    const file = join(this.vmRunDir(vmId), 'serial.log');
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const text = (await readFile(file, 'utf8').catch(() => '')).slice(fromOffset);
      const line = text.split(/\r?\n/).find((l) => pattern.test(l));
      if (line !== undefined) return line;
      await sleep(200);
    }
    const tail = (await readFile(file, 'utf8').catch(() => '(no serial log)')).slice(-2000);
    throw new Error(`no serial line matching ${pattern} within ${timeoutMs} ms; serial log ends:\n${tail}`);
  }

  async serialLength(vmId: string): Promise<number> {
    return (await readFile(join(this.vmRunDir(vmId), 'serial.log'), 'utf8').catch(() => '')).length;
  }

  /** Stops everything this instance started and removes its folders. */
  async dispose(): Promise<void> {
    await this.killDaemon();
    for (const pid of await this.vmProcessPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sleep(100);
    await rm(resolve(this.home, '..'), { recursive: true, force: true });
  }
}

/**
 * Whether a process runs. A zombie counts as gone: this machine's PID 1 reaps daemonized
 * processes lazily, so an exited QEMU can linger as a zombie for a while.
 */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Retries `probe` until it returns a value other than undefined, or times out. */
export async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}
