import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { VisorError, invalid } from '../core/index.js';
import type { DiskFormat } from '../core/index.js';
import { diskNodes, isRemoteLocation, parseDiskLocation } from '../engine/qemu/index.js';
import type { RemoteDiskLocation } from '../engine/qemu/index.js';

const run = promisify(execFile);

/**
 * Network disks QEMU's block layer opens itself: nfs://, iscsi://, nbd://, nbd+unix://,
 * ssh:// (drivers from Debian's qemu-block-extra). A share mounted on the host (sshfs, SMB,
 * an NFS mount) is not one of these: its files are ordinary paths. The grammar and the
 * blockdev options live in engine/qemu/disk-location.ts (the argv builder needs them); this
 * file is the storage feature's face: validation with the user's field, and a probe that
 * opens the disk through the very options QEMU will get.
 */

export const REMOTE_DISK_ERROR_CODES = {
  notRemote: 'remote-disk-not-a-url',
  unreachable: 'remote-disk-unreachable',
  formatMismatch: 'remote-disk-format-mismatch',
} as const;

/** Parses a network disk URL; refuses a local path (use it as a path) and other schemes. */
export function parseRemoteDisk(url: string, field = 'path'): RemoteDiskLocation {
  if (!isRemoteLocation(url)) {
    throw new VisorError('invalid', REMOTE_DISK_ERROR_CODES.notRemote, `"${url}" is not a network disk URL.`, {
      field,
      hint: 'A file on a mounted share is an ordinary path; a network disk looks like nfs://server/export/disk.qcow2.',
    });
  }
  const location = parseDiskLocation(url, { field });
  if (location.kind === 'file' || location.kind === 'host-device') throw invalid(field, `"${url}" is not a network disk URL.`);
  return location;
}

export interface RemoteDiskInfo {
  location: RemoteDiskLocation;
  format: string;
  virtualSize: number;
  backingFile: string | null;
}

/**
 * Opens the disk the way QEMU will (qemu-img info on a json: filename holding the same
 * protocol and format nodes as the VM's argv) and reports its size and backing file. A
 * server that does not answer, a missing file or a wrong format becomes a VisorError on
 * `field` with a hint for the protocol.
 */
export async function probeRemoteDisk(
  url: string,
  format: DiskFormat,
  options: { field?: string; signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<RemoteDiskInfo> {
  const field = options.field ?? 'path';
  const location = parseRemoteDisk(url, field);
  const nodes = diskNodes({ path: url, format, readOnly: true }, 'probe', { field });
  const { 'node-name': _protocolName, ...protocol } = nodes.protocol;
  const { 'node-name': _formatName, file: _file, ...top } = nodes.format;
  const spec = { ...top, file: protocol };
  const signal = AbortSignal.any([options.signal ?? new AbortController().signal, AbortSignal.timeout(options.timeoutMs ?? 30_000)]);
  let stdout: string;
  try {
    ({ stdout } = await run('qemu-img', ['info', '--output=json', '-U', `json:${JSON.stringify(spec)}`], { signal }));
  } catch (error) {
    const stderr = ((error as { stderr?: string }).stderr ?? (error as Error).message).trim().split('\n').at(-1) ?? '';
    if (/Image is not in|not in .* format|Could not read .*header|Unknown file format/i.test(stderr)) {
      throw new VisorError('invalid', REMOTE_DISK_ERROR_CODES.formatMismatch, `"${url}" is not a ${format} disk: ${stderr}`, { field, cause: error });
    }
    throw new VisorError('unavailable', REMOTE_DISK_ERROR_CODES.unreachable, `Could not open "${url}": ${stderr || 'no answer'}.`, {
      field,
      cause: error,
      hint: HINTS[location.kind],
    });
  }
  const info = JSON.parse(stdout) as { format: string; 'virtual-size': number; 'backing-filename'?: string };
  return { location, format: info.format, virtualSize: info['virtual-size'], backingFile: info['backing-filename'] ?? null };
}

const HINTS: Record<RemoteDiskLocation['kind'], string> = {
  nfs: 'Check that the NFS server exports the folder to this host (NFSv3, with its portmapper reachable) and that the file exists.',
  iscsi: 'Check the portal address and port, the target IQN and the LUN, and that the target accepts this initiator.',
  nbd: 'Check that the NBD server runs and serves that export name.',
  ssh: 'QEMU logs in with ssh-agent or the default keys of the user running it, and checks known_hosts; check both.',
};
