import type { VmConfig } from '../../core/index.js';
import { blockdevArg, diskNodeName, diskNodes, storageDaemonDisks } from './block-nodes.js';
import { optionList, optionString } from './qemu-option.js';
import type { RuntimeFiles } from './runtime-files.js';

/**
 * argv (without the binary) of the VM's qemu-storage-daemon: one file + vhdx/vpc node per disk
 * in Microsoft's formats, each exported over NBD on one unix socket under the disk's id. Returns
 * null when the VM has no such disk, unless `always` (a daemon started on demand for a
 * hot-added disk: no disk yet, only the NBD server and QMP). Pure.
 */
export function buildStorageDaemonArgs(
  config: Pick<VmConfig, 'disks'>,
  files: RuntimeFiles,
  options: { blockDevices?: ReadonlySet<string>; always?: boolean } = {},
): string[] | null {
  const disks = storageDaemonDisks(config.disks);
  if (disks.length === 0 && !options.always) return null;
  const args: string[] = [];
  for (const disk of disks) {
    const nodes = diskNodes(disk, diskNodeName(disk.id), { blockDevices: options.blockDevices });
    args.push('--blockdev', optionList(blockdevArg(nodes.protocol)), '--blockdev', optionList(blockdevArg(nodes.format)));
  }
  args.push('--nbd-server', optionList([['addr.type', 'unix'], ['addr.path', files.storageNbdSocket]]));
  for (const disk of disks) {
    const node = diskNodeName(disk.id);
    args.push(
      '--export',
      optionList([
        ['type', 'nbd'],
        ['id', `export-${node}`],
        ['node-name', node],
        ['name', disk.id],
        ['writable', !disk.readOnly],
      ]),
    );
  }
  args.push(
    '--chardev',
    optionString('socket', [['id', 'qmp'], ['path', files.storageQmpSocket], ['server', true], ['wait', false]]),
    '--monitor',
    'chardev=qmp,mode=control',
    '--pidfile',
    files.storagePidFile,
    '--daemonize',
  );
  return args;
}
