import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A network namespace the test made, joined to the host by a veth pair on a /30 of
 * 10.213.0.0/16: servers inside listen on every address without touching the host's network;
 * QEMU on the host reaches them at `guestAddress`. Needs root.
 */
export class TestNetns implements AsyncDisposable {
  private constructor(
    readonly name: string,
    readonly hostIf: string,
    readonly hostAddress: string,
    readonly nsAddress: string,
  ) {}

  static async create(): Promise<TestNetns> {
    const id = randomBytes(3).toString('hex');
    const slot = randomBytes(2).readUInt16BE(0) & 0x3fff; // /30 index within 10.213.0.0/16
    const base = slot * 4;
    const host = `10.213.${base >> 8}.${(base & 0xff) + 1}`;
    const ns = `10.213.${base >> 8}.${(base & 0xff) + 2}`;
    const net = new TestNetns(`visor-t${id}`, `vt${id}h`, host, ns);
    await run('ip', ['netns', 'add', net.name]);
    try {
      await run('ip', ['link', 'add', net.hostIf, 'type', 'veth', 'peer', 'name', `vt${id}n`]);
      await run('ip', ['link', 'set', `vt${id}n`, 'netns', net.name]);
      await run('ip', ['addr', 'add', `${host}/30`, 'dev', net.hostIf]);
      await run('ip', ['link', 'set', net.hostIf, 'up']);
      await net.exec('ip', ['addr', 'add', `${ns}/30`, 'dev', `vt${id}n`]);
      await net.exec('ip', ['link', 'set', `vt${id}n`, 'up']);
      await net.exec('ip', ['link', 'set', 'lo', 'up']);
      return net;
    } catch (error) {
      await net.dispose();
      throw error;
    }
  }

  /** argv prefix that runs a command inside the namespace. */
  argv(command: string, args: readonly string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.name, command, ...args]];
  }

  async exec(command: string, args: readonly string[]): Promise<string> {
    const [bin, argv] = this.argv(command, args);
    return (await run(bin, argv)).stdout;
  }

  /** Deletes the namespace (its veth end, and so the host's, go with it). */
  async dispose(): Promise<void> {
    await run('ip', ['netns', 'del', this.name]).catch(() => undefined);
    await run('ip', ['link', 'del', this.hostIf]).catch(() => undefined);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
