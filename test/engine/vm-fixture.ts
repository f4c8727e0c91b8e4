import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DiskAttachment, VmConfig } from '../../src/core/index.js';
import { sampleVmConfig } from '../../src/core/vm-config-fixture.js';
import type { VmPaths } from '../../src/engine/qemu/index.js';

const run = promisify(execFile);

/**
 * A VM with no operating system for engine tests: SeaBIOS or OVMF idles with nothing to boot.
 * Blank disks are made with qemu-img in a temp folder that `dispose()` removes, after killing
 * anything of the VM's still running (and reporting it: a leak fails the test).
 */
export class TestVm {
  private constructor(
    readonly dir: string,
    readonly config: VmConfig,
    readonly paths: VmPaths,
  ) {}

  static async create(options: { generation: 1 | 2; disks: Array<Omit<DiskAttachment, 'path' | 'readOnly'> & { size?: string }>; dvd?: VmConfig['dvd'] }): Promise<TestVm> {
    // Short paths: unix sockets allow 107 bytes.
    const dir = await mkdtemp(join(tmpdir(), 'vt-'));
    const disks: DiskAttachment[] = [];
    for (const disk of options.disks) {
      const path = join(dir, `${disk.id}.${disk.format === 'vhd' ? 'vhd' : disk.format}`);
      const format = disk.format === 'vhd' ? 'vpc' : disk.format;
      await run('qemu-img', ['create', '-q', '-f', format, path, disk.size ?? '64M']);
      disks.push({ id: disk.id, controller: disk.controller, controllerNumber: disk.controllerNumber, location: disk.location, format: disk.format, path, readOnly: false });
    }
    const config: VmConfig = sampleVmConfig({
      id: randomUUID(),
      name: `test-gen${options.generation}`,
      generation: options.generation,
      processors: { count: 1 },
      memory: { startup: 128 * 1024 * 1024, dynamic: null },
      bootOrder: ['disk', 'dvd'],
      disks,
      dvd: options.dvd ?? null,
      networkAdapters: [{ id: 'nic0', mac: '52:54:00:aa:bb:01', model: 'virtio', switchName: null }],
      display: { width: 1024, height: 768 },
      createdAt: new Date().toISOString(),
    });
    return new TestVm(dir, config, { vmDir: join(dir, 'vm'), runDir: join(dir, 'run') });
  }

  /** Live (non-zombie) processes whose command line names this VM's uuid or folder. */
  async processes(): Promise<Array<{ pid: number; argv0: string }>> {
    const found: Array<{ pid: number; argv0: string }> = [];
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const cmdline = (await readFile(`/proc/${entry}/cmdline`)).toString();
        if (!cmdline.includes(this.config.id) && !cmdline.includes(this.dir)) continue;
        const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
        if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
        found.push({ pid: Number(entry), argv0: cmdline.split('\0')[0] ?? '' });
      } catch {
        // gone while we looked
      }
    }
    return found;
  }

  /** Kills whatever of this VM still runs, removes its folder, and returns what leaked. */
  async dispose(): Promise<string[]> {
    const leaked = await this.processes();
    for (const proc of leaked) {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await rm(this.dir, { recursive: true, force: true });
    return leaked.map((p) => `${p.pid} ${p.argv0}`);
  }
}

/** Width and height from a PNG's IHDR chunk; throws if the bytes are not a PNG. */
export function pngSize(png: Buffer): { width: number; height: number } {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (!png.subarray(0, 8).equals(signature)) throw new Error('not a PNG');
  if (png.toString('latin1', 12, 16) !== 'IHDR') throw new Error('PNG without IHDR first');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}
