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
      hint: location.kind === 'ssh' ? sshHint(stderr) : HINTS[location.kind],
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

/**
 * What to do about a failed ssh:// open, from QEMU 10.0.2's message. Its ssh driver (libssh)
 * checks the host key against ~/.ssh/known_hosts of the user QEMU runs as (the home folder of
 * the password database, not $HOME) unless the URL gives a fingerprint, and logs in with
 * publickey only: the keys of the ssh-agent at SSH_AUTH_SOCK in visord's environment, then
 * that user's ~/.ssh/id_* files. No password, no key file option.
 */
function sshHint(message: string): string {
  if (/does not match host_key_check/i.test(message)) {
    return 'The server\'s host key is not the one host_key_check names: check the fingerprint (ssh-keygen -l on the server) before trusting it.';
  }
  if (/known_hosts|host key/i.test(message)) {
    return 'QEMU found no matching host key in known_hosts of the user it runs as. Add the fingerprint to the URL ' +
      '(?host_key_check=SHA256:… as "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub" prints it on the server), or add the key to that known_hosts.';
  }
  if (/authenticat/i.test(message)) {
    return 'QEMU logs in with publickey only: a key of the ssh-agent at SSH_AUTH_SOCK in visord\'s environment, or ~/.ssh/id_ed25519 (id_ecdsa, id_rsa) ' +
      'of the user QEMU runs as. The server must list that key in the user\'s authorized_keys.';
  }
  return HINTS.ssh;
}
