import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNetns } from './netns.js';
import { stopChild, waitUntilReady } from './child-process.js';

/**
 * A userspace NFS server for tests: nfs-ganesha (VFS FSAL) exporting a local folder, with its
 * own rpcbind, both inside a network namespace the test made (and a private /run there, so
 * the host's rpcbind, if any, is untouched). QEMU's nfs driver (libnfs, NFSv3 through the
 * portmapper) reaches it at nfs://<address><exportDir>/<file>. Needs root and the Debian
 * packages nfs-ganesha, nfs-ganesha-vfs, rpcbind.
 */
export class NfsServer implements AsyncDisposable {
  private constructor(
    readonly net: TestNetns,
    readonly exportDir: string,
    private readonly dir: string,
    private readonly ganesha: ChildProcess,
  ) {}

  get address(): string {
    return this.net.nsAddress;
  }

  /** nfs:// URL of a file in the export. */
  url(file: string): string {
    return `nfs://${this.address}${this.exportDir}/${file}`;
  }

  /** The export's local folder: the test may write files there directly. */
  path(file: string): string {
    return join(this.exportDir, file);
  }

  static async start(options: { timeoutMs?: number } = {}): Promise<NfsServer> {
    const dir = await mkdtemp(join(tmpdir(), 'visor-nfs-'));
    const exportDir = join(dir, 'export');
    await mkdir(exportDir);
    const conf = join(dir, 'ganesha.conf');
    await writeFile(
      conf,
      [
        'NFS_CORE_PARAM { Protocols = 3, 4; Enable_NLM = false; Enable_RQUOTA = false; }',
        'NFSV4 { Graceless = true; }',
        'NFS_KRB5 { Active_krb5 = false; }',
        `EXPORT { Export_Id = 1; Path = ${exportDir}; Pseudo = ${exportDir}; Protocols = 3, 4; Transports = TCP;`,
        '  Access_Type = RW; Squash = No_Root_Squash; SecType = sys; FSAL { Name = VFS; } }',
        '',
      ].join('\n'),
    );
    const net = await TestNetns.create();
    const log = join(dir, 'ganesha.log');
    const script = [
      'mount -t tmpfs none /run',
      'mkdir -p /run/ganesha /run/rpcbind',
      `rpcbind -f -w & echo $! > ${join(dir, 'rpcbind.pid')}`,
      'sleep 0.3',
      `exec ganesha.nfsd -F -f ${conf} -L ${log} -p ${join(dir, 'ganesha.pid')}`,
    ].join('; ');
    const [bin, args] = net.argv('sh', ['-c', script]);
    const ganesha = spawn(bin, args, { stdio: 'ignore' });
    const server = new NfsServer(net, exportDir, dir, ganesha);
    try {
      let text = '';
      const initialized = async (): Promise<boolean> => {
        text = await readFile(log, 'utf8').catch(() => '');
        return text.includes('NFS SERVER INITIALIZED');
      };
      await waitUntilReady(ganesha, 'ganesha.nfsd', initialized, { timeoutMs: options.timeoutMs ?? 20_000, intervalMs: 100, detail: () => text.slice(-2000) });
      return server;
    } catch (error) {
      await server.dispose();
      throw error;
    }
  }

  /** Stops ganesha and rpcbind, deletes the namespace and the export folder. */
  async dispose(): Promise<void> {
    await stopChild(this.ganesha, { signal: 'SIGTERM', graceMs: 5_000, kill: true });
    const rpcbind = Number((await readFile(join(this.dir, 'rpcbind.pid'), 'utf8').catch(() => '')).trim());
    if (rpcbind > 0) {
      try {
        process.kill(rpcbind, 'SIGTERM');
      } catch {
        // gone
      }
    }
    await this.net.dispose();
    await rm(this.dir, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
