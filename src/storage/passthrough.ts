import { readFile, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { VisorError } from '../core/index.js';
import { isHostDevicePath } from '../engine/qemu/index.js';

/**
 * Pass-through disks: a whole host block device given to one VM (QEMU's `host_device` driver,
 * raw format). Before Visor hands a device over it must exist, be a block device, and be free:
 * not mounted (itself, a partition of it, or anything stacked on it: device-mapper, md), not
 * swap, not held by a holder, and not given to another VM. The reading of /proc and /sys is
 * at the edge (`inspectBlockDevice`); the decision (`passthroughRefusal`) is pure.
 */

export const PASSTHROUGH_ERROR_CODES = {
  notFound: 'passthrough-device-not-found',
  notBlockDevice: 'passthrough-not-block-device',
  notUnderDev: 'passthrough-not-under-dev',
  mounted: 'passthrough-device-mounted',
  swap: 'passthrough-device-swap',
  held: 'passthrough-device-held',
  inUse: 'passthrough-device-in-use',
} as const;

/** One line of /proc/self/mountinfo, the fields we need (proc(5)). */
export interface MountEntry {
  /** "major:minor" of the device behind the mount (st_dev). */
  device: string;
  mountPoint: string;
  source: string;
}

/** What the host says about a block device and everything built on it. */
export interface BlockDeviceFacts {
  /** The path asked for, and the /dev node it resolves to. */
  path: string;
  realPath: string;
  /** Kernel name (sdb, loop0, nvme0n1) and "major:minor". */
  name: string;
  device: string;
  sizeBytes: number;
  readOnly: boolean;
  /** The device's partitions, each {name, device}. */
  partitions: Array<{ name: string; device: string }>;
  /** Block devices stacked on the device or its partitions (dm-0, md0), recursively. */
  holders: Array<{ name: string; device: string; of: string }>;
}

/** A device that may be passed through, with its facts. */
export type PassthroughDevice = BlockDeviceFacts;

/** Parses /proc/self/mountinfo. Fields: id parent major:minor root mountpoint opts ... - fstype source superopts. */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (fields.length < 5 || dash < 0) continue;
    entries.push({ device: fields[2] ?? '', mountPoint: unescapeMount(fields[4] ?? ''), source: unescapeMount(fields[dash + 2] ?? '') });
  }
  return entries;
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040). */
function unescapeMount(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Device paths from /proc/swaps (first column, after the header). */
export function parseSwaps(text: string): string[] {
  return text
    .split('\n')
    .slice(1)
    .map((line) => line.split(/\s+/)[0] ?? '')
    .filter((path) => path.startsWith('/'));
}

/**
 * Why a device cannot be passed through, as a VisorError; null when it can. Pure. `inUse`: the
 * real paths (/dev/sdb) other VMs pass through.
 */
export function passthroughRefusal(
  facts: BlockDeviceFacts,
  host: { mounts: readonly MountEntry[]; swaps: readonly string[]; inUse: ReadonlySet<string> },
  field = 'path',
): VisorError | null {
  const quoted = facts.path === facts.realPath ? `"${facts.path}"` : `"${facts.path}" (${facts.realPath})`;
  if (host.inUse.has(facts.realPath) || host.inUse.has(facts.path)) {
    return new VisorError('conflict', PASSTHROUGH_ERROR_CODES.inUse, `The device ${quoted} is already passed through to another VM.`, {
      field,
      hint: 'A device can belong to one VM at a time: remove it from the other VM first.',
    });
  }
  const parts = [{ name: facts.name, device: facts.device }, ...facts.partitions];
  const stack = [...parts, ...facts.holders.map((h) => ({ name: h.name, device: h.device }))];
  for (const part of stack) {
    const mount = host.mounts.find((m) => m.device === part.device);
    if (mount) {
      const what = part.name === facts.name ? 'is' : `has ${part.name}, which is`;
      return new VisorError('conflict', PASSTHROUGH_ERROR_CODES.mounted, `The device ${quoted} ${what} mounted at "${mount.mountPoint}".`, {
        field,
        hint: `Unmount it on the host (umount ${mount.mountPoint}) before giving the device to a VM.`,
        details: { mountPoint: mount.mountPoint, device: part.name },
      });
    }
  }
  for (const part of stack) {
    if (host.swaps.some((s) => basename(s) === part.name)) {
      return new VisorError('conflict', PASSTHROUGH_ERROR_CODES.swap, `The device ${quoted} holds swap space (${part.name}).`, {
        field,
        hint: `Turn it off on the host (swapoff /dev/${part.name}) first.`,
      });
    }
  }
  const holder = facts.holders[0];
  if (holder) {
    return new VisorError('conflict', PASSTHROUGH_ERROR_CODES.held, `The device ${quoted} is in use by ${holder.name} (stacked on ${holder.of}).`, {
      field,
      hint: 'Device-mapper (LVM, LUKS) or RAID holds it open: deactivate that first (vgchange -an, cryptsetup close, mdadm --stop).',
      details: { holders: facts.holders.map((h) => h.name) },
    });
  }
  return null;
}

/** Reads a block device's facts from the host: stat, /sys/dev/block, partitions, holders. */
export async function inspectBlockDevice(path: string, options: { field?: string; sysRoot?: string } = {}): Promise<BlockDeviceFacts> {
  const field = options.field ?? 'path';
  const sys = options.sysRoot ?? '/sys';
  if (!path.startsWith('/')) throw new VisorError('invalid', 'invalid-value', `The device path "${path}" is not absolute.`, { field });
  let real: string;
  let info;
  try {
    real = await realpath(path);
    info = await stat(real);
  } catch (error) {
    throw new VisorError('not-found', PASSTHROUGH_ERROR_CODES.notFound, `The device "${path}" does not exist.`, {
      field,
      cause: error,
      hint: 'List the host\'s block devices with lsblk.',
    });
  }
  if (!info.isBlockDevice()) {
    throw new VisorError('invalid', PASSTHROUGH_ERROR_CODES.notBlockDevice, `"${path}" is not a block device.`, {
      field,
      hint: 'Pass-through takes a whole device such as /dev/sdb; attach an image file as an ordinary disk instead.',
    });
  }
  if (!isHostDevicePath(real)) {
    throw new VisorError('invalid', PASSTHROUGH_ERROR_CODES.notUnderDev, `The block device "${path}" resolves to "${real}", outside /dev/.`, {
      field,
      hint: 'Name the device by its /dev/ path.',
    });
  }
  const device = `${major(info.rdev)}:${minor(info.rdev)}`;
  const sysDir = resolve(join(sys, 'dev', 'block'), await readlink(join(sys, 'dev', 'block', device)));
  const name = basename(sysDir);
  const partitions: Array<{ name: string; device: string }> = [];
  for (const entry of await readdir(sysDir).catch(() => [] as string[])) {
    const dev = await readText(join(sysDir, entry, 'dev'));
    if (dev !== null && (await readText(join(sysDir, entry, 'partition'))) !== null) partitions.push({ name: entry, device: dev });
  }
  const holders: BlockDeviceFacts['holders'] = [];
  const seen = new Set<string>();
  const walk = async (of: string): Promise<void> => {
    for (const holder of await readdir(join(sys, 'class', 'block', of, 'holders')).catch(() => [] as string[])) {
      if (seen.has(holder)) continue;
      seen.add(holder);
      const dev = (await readText(join(sys, 'class', 'block', holder, 'dev'))) ?? '';
      holders.push({ name: holder, device: dev, of });
      await walk(holder);
    }
  };
  for (const part of [name, ...partitions.map((p) => p.name)]) await walk(part);
  const sectors = Number((await readText(join(sysDir, 'size'))) ?? '0');
  const readOnly = (await readText(join(sysDir, 'ro'))) === '1';
  return { path, realPath: real, name, device, sizeBytes: sectors * 512, readOnly, partitions, holders };
}

/**
 * Checks that a host block device may be passed through to a VM and returns its facts; throws
 * the refusal (a VisorError naming `field`) otherwise. `inUse`: paths other VMs pass through.
 */
export async function validatePassthroughDevice(
  path: string,
  options: { inUse?: Iterable<string>; field?: string } = {},
): Promise<PassthroughDevice> {
  const facts = await inspectBlockDevice(path, { field: options.field });
  const inUse = new Set<string>();
  for (const other of options.inUse ?? []) {
    inUse.add(other);
    inUse.add(await realpath(other).catch(() => other));
  }
  const mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  const swaps = parseSwaps((await readText('/proc/swaps')) ?? '');
  const refusal = passthroughRefusal(facts, { mounts, swaps, inUse }, options.field);
  if (refusal) throw refusal;
  return facts;
}

async function readText(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** glibc's gnu_dev_major/minor on a dev_t. */
function major(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}

function minor(rdev: number): number {
  return Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
}
