import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNetns } from './netns.js';
import { stopChild, waitUntilReady } from './child-process.js';

/**
 * A userspace iSCSI target for tests: tgt's tgtd serving files as LUNs of one target, inside
 * a network namespace the test made (with a private /run, where tgtadm's control socket lives).
 * QEMU's iscsi driver (libiscsi) reaches it at iscsi://<address>/<iqn>/<lun>. Needs root and
 * the Debian package tgt.
 */
export class IscsiTarget implements AsyncDisposable {
  static readonly IQN = 'iqn.2026-01.org.visor.test:disks';

  private constructor(
    readonly net: TestNetns,
    private readonly dir: string,
    private readonly shell: ChildProcess,
  ) {}

  get address(): string {
    return this.net.nsAddress;
  }

  /** iscsi:// URL of LUN `lun` (1-based, in the order of `files`). */
  url(lun: number): string {
    return `iscsi://${this.address}/${IscsiTarget.IQN}/${lun}`;
  }

  /** Serves `files` (raw images) as LUNs 1..n of one target. */
  static async start(files: readonly string[], options: { timeoutMs?: number } = {}): Promise<IscsiTarget> {
    const dir = await mkdtemp(join(tmpdir(), 'visor-iscsi-'));
    const net = await TestNetns.create();
    const ready = join(dir, 'ready');
    const adm = 'tgtadm --lld iscsi';
    const script = [
      'set -e',
      'mount -t tmpfs none /run',
      `tgtd -f --iscsi portal=${net.nsAddress}:3260 > ${join(dir, 'tgtd.log')} 2>&1 & echo $! > ${join(dir, 'tgtd.pid')}`,
      'for i in $(seq 50); do [ -S /run/tgtd/socket.0 ] && break; sleep 0.1; done',
      `${adm} --op new --mode target --tid 1 -T ${IscsiTarget.IQN}`,
      ...files.map((file, i) => `${adm} --op new --mode logicalunit --tid 1 --lun ${i + 1} -b ${file}`),
      `${adm} --op bind --mode target --tid 1 -I ALL`,
      `touch ${ready}`,
      'wait',
    ].join('\n');
    const [bin, args] = net.argv('sh', ['-c', script]);
    const shell = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    shell.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const target = new IscsiTarget(net, dir, shell);
    try {
      await waitUntilReady(shell, 'the tgtd setup', () => readFile(ready).then(() => true, () => false), {
        timeoutMs: options.timeoutMs ?? 15_000,
        intervalMs: 100,
        detail: () => stderr,
      });
      return target;
    } catch (error) {
      await target.dispose();
      throw error;
    }
  }

  async dispose(): Promise<void> {
    const pid = Number((await readFile(join(this.dir, 'tgtd.pid'), 'utf8').catch(() => '')).trim());
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL'); // tgtd ignores SIGTERM while a target is bound
      } catch {
        // gone
      }
    }
    await stopChild(this.shell, { signal: null, graceMs: 3_000, kill: true });
    await this.net.dispose();
    await rm(this.dir, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
