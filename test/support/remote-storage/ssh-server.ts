import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stopChild, waitUntilReady } from './child-process.js';

const run = promisify(execFile);

/**
 * An OpenSSH server on 127.0.0.1 for tests (its own config, host key and one authorized client
 * key, all in a temp folder): sshfs mounts of it over FUSE (the "mounted share" case, a path
 * like any other to QEMU), and ssh:// URLs QEMU's own ssh driver opens (log in as root with the
 * client key through an `SshAgent`; the host key checked by its fingerprint). Needs root (sshd)
 * and the Debian packages openssh-server (and sshfs for mounts).
 */
export class SshServer implements AsyncDisposable {
  readonly #mounts: string[] = [];

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly clientKey: string,
    /** The host key's fingerprint as `ssh-keygen -l` prints it: SHA256:<base64>. */
    readonly hostKeyFingerprint: string,
    private readonly sshd: ChildProcess,
  ) {}

  /**
   * ssh://root@127.0.0.1:PORT/path of a file this server serves (paths are the host's own),
   * with the host key's fingerprint unless `hostKeyCheck` says otherwise (false: none in the
   * URL, so QEMU falls back to known_hosts).
   */
  url(path: string, options: { hostKeyCheck?: string | false } = {}): string {
    const check = options.hostKeyCheck ?? this.hostKeyFingerprint;
    return `ssh://root@127.0.0.1:${this.port}${path}${check === false ? '' : `?host_key_check=${check}`}`;
  }

  /** TCP connections established to this server now (from `ss`). */
  async connections(): Promise<number> {
    const { stdout } = await run('ss', ['-Htn', 'state', 'established', `( sport = :${this.port} )`]);
    return stdout.split('\n').filter((line) => line.trim() !== '').length;
  }

  /**
   * Stops the server, and every session it serves (their sshd children first: a session
   * outlives the listener), keeping the folder. `dispose()` still removes it.
   */
  async stop(): Promise<void> {
    if (this.sshd.exitCode !== null || this.sshd.signalCode !== null) return;
    if (this.sshd.pid !== undefined) await run('pkill', ['-TERM', '-P', String(this.sshd.pid)]).catch(() => undefined);
    await stopChild(this.sshd, { signal: 'SIGTERM', graceMs: 5_000, kill: false });
  }

  static async start(options: { timeoutMs?: number } = {}): Promise<SshServer> {
    const dir = await mkdtemp(join(tmpdir(), 'visor-ssh-'));
    const hostKey = join(dir, 'host_ed25519');
    const clientKey = join(dir, 'client_ed25519');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', clientKey]);
    await writeFile(join(dir, 'authorized_keys'), await readFile(`${clientKey}.pub`));
    const fingerprint = (await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`])).stdout.split(' ')[1] ?? '';
    const port = await freePort();
    const config = join(dir, 'sshd_config');
    await writeFile(
      config,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'StrictModes no',
        'UsePAM no',
        'Subsystem sftp internal-sftp',
        '',
      ].join('\n'),
    );
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    sshd.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const server = new SshServer(dir, port, clientKey, fingerprint, sshd);
    try {
      await waitUntilReady(sshd, 'sshd', () => stderr.includes('Server listening'), { timeoutMs: options.timeoutMs ?? 10_000, intervalMs: 50, detail: () => stderr });
      return server;
    } catch (error) {
      await server.dispose();
      throw error;
    }
  }

  /** Mounts `remoteDir` of this server at `mountPoint` with sshfs (as root@127.0.0.1). */
  async mountSshfs(remoteDir: string, mountPoint: string): Promise<void> {
    await mkdir(mountPoint, { recursive: true });
    await run('sshfs', [
      '-p',
      String(this.port),
      '-o',
      `IdentityFile=${this.clientKey},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes,LogLevel=ERROR`,
      `root@127.0.0.1:${remoteDir}`,
      mountPoint,
    ]);
    this.#mounts.push(mountPoint);
  }

  /** Unmounts an sshfs mount; rejects while a file on it is still open (EBUSY). */
  async unmount(mountPoint: string): Promise<void> {
    await run('umount', [mountPoint]);
    this.#mounts.splice(this.#mounts.indexOf(mountPoint), 1);
  }

  async dispose(): Promise<void> {
    for (const mount of this.#mounts.splice(0)) await run('umount', ['-l', mount]).catch(() => undefined);
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/**
 * An ssh-agent of the test's own (`ssh-agent -D` on a socket in a temp folder) holding the
 * given keys. QEMU's ssh driver logs in with the agent at SSH_AUTH_SOCK in its environment
 * (QEMU inherits the test process's), or with ~/.ssh/id_* of the password database's home
 * (/root here; $HOME is not read): the agent keeps the test out of /root/.ssh.
 */
export class SshAgent implements AsyncDisposable {
  private constructor(
    readonly dir: string,
    readonly socket: string,
    private readonly agent: ChildProcess,
  ) {}

  static async start(keys: readonly string[], options: { timeoutMs?: number } = {}): Promise<SshAgent> {
    const dir = await mkdtemp(join(tmpdir(), 'visor-agent-'));
    const socket = join(dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    const out = new SshAgent(dir, socket, agent);
    try {
      await waitUntilReady(agent, 'ssh-agent', () => access(socket).then(() => true, () => false), { timeoutMs: options.timeoutMs ?? 10_000, intervalMs: 20 });
      for (const key of keys) await run('ssh-add', ['-q', key], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
      return out;
    } catch (error) {
      await out.dispose();
      throw error;
    }
  }

  async dispose(): Promise<void> {
    await stopChild(this.agent, { signal: 'SIGTERM', graceMs: 5_000, kill: false });
    await rm(this.dir, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/** A TCP port free on 127.0.0.1 now (the kernel's pick). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
